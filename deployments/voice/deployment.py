"""The voice family's Ray Serve deployment: the ingress of application `voice`.

Audio chunks cross exactly one Ray hop (proxy -> this replica, which holds the
VITS model). Synthesis runs on the engine's worker thread, so this replica's
event loop keeps answering Health and streaming chunks while a batch computes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, aclosing
from typing import Any

from ray import serve

from deployments.engine_ingress import EngineIngress
from deployments.engines.voice import VoiceEngine
from deployments.engines.voice_types import SpeechRequest
from deployments.ingress import stream_rpc, unary_rpc
from deployments.placement import replica_placement
from deployments.voice.config import VoiceAppConfig
from deployments.voice.converters import (
    to_engine_request,
    to_stream_response,
    to_synthesize_response,
)
from deployments.voice.telemetry import SpeechObserver, request_span
from maestro.v1 import models_pb2, voice_pb2

__all__ = ["VoiceDeployment"]

logger = logging.getLogger("maestro.voice")
SERVICES = ("maestro.v1.VoiceService", "maestro.v1.ModelService")


@serve.deployment(name="Voice")
class VoiceDeployment(EngineIngress):
    """Serves VoiceService, ModelService and Health for the voice family."""

    family = "voice"
    services = SERVICES

    async def __init__(self, config: dict[str, Any]) -> None:
        self.config = VoiceAppConfig.model_validate(config)
        self._start_in_background(VoiceEngine(self.config.engine))

    @unary_rpc(voice_pb2.SynthesizeResponse)
    async def Synthesize(
        self, request: voice_pb2.SynthesizeRequest, request_id: str
    ) -> voice_pb2.SynthesizeResponse:
        await self._engine_ready()
        self.engine.check_model(request.model)
        engine_request = to_engine_request(request, request_id)
        with self._span("synthesize", engine_request) as observer:
            speech = await self.engine.synthesize(engine_request)
            observer.speech(speech)
        return to_synthesize_response(
            speech, model=self.engine.config.served_id, request_id=request_id
        )

    @stream_rpc
    async def StreamSpeech(
        self, request: voice_pb2.StreamSpeechRequest, request_id: str
    ) -> AsyncIterator[voice_pb2.StreamSpeechResponse]:
        await self._engine_ready()
        self.engine.check_model(request.model)
        engine_request = to_engine_request(request, request_id)
        chunks = self.engine.stream(engine_request)
        with self._span("stream", engine_request) as observer:
            async with aclosing(chunks):
                async for chunk in chunks:
                    observer.chunk(chunk)
                    yield to_stream_response(chunk, request_id=request_id)

    def _span(
        self, op: str, request: SpeechRequest
    ) -> AbstractContextManager[SpeechObserver]:
        return request_span(
            op, request, max_segment_chars=self.engine.config.max_segment_chars
        )

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(models=[self._model_info()])

    def _model_info(self) -> models_pb2.ModelInfo:
        engine = self.engine
        limits = engine.limits
        c = engine.config
        return models_pb2.ModelInfo(
            id=c.served_id,
            family=models_pb2.FAMILY_VOICE,
            engine=engine.engine_name,
            device=engine.device,
            ready=engine.ready,
            status_message=engine.status_message,
            limits={}
            if limits is None
            else {
                "max_text_chars": str(limits.max_text_chars),
                "max_segment_chars": str(c.max_segment_chars),
                "speaking_rate": f"[{limits.min_speaking_rate}, "
                f"{limits.max_speaking_rate}]",
                "voices": ", ".join(limits.voices),
                "default_voice": limits.voices[0],
                "formats": ", ".join(limits.formats),
                "sample_rate": str(limits.sample_rate),
                "max_batch_size": str(c.batching.max_batch_size),
            },
            stats={**engine.stats(), **replica_placement()},
        )
