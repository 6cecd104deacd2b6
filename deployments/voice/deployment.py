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
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.types import SpeechRequest
from deployments.ingress import stream_rpc, unary_rpc
from deployments.openai_api.routes import HttpIngress
from deployments.voice.config import VoiceAppConfig
from deployments.voice.converters import (
    to_engine_request,
    to_stream_response,
    to_synthesize_response,
)
from deployments.voice.openai_api import speech
from deployments.voice.telemetry import SpeechObserver, request_span
from maestro.v1 import models_pb2, voice_pb2

__all__ = ["VoiceDeployment"]

logger = logging.getLogger("maestro.voice")
SERVICES = ("maestro.v1.VoiceService", "maestro.v1.ModelService")


@serve.deployment(name="Voice")
class VoiceDeployment(HttpIngress, EngineIngress):
    """Serves VoiceService, ModelService and Health for the voice family, and
    OpenAI's audio/speech over HTTP."""

    family = "voice"
    family_enum = models_pb2.FAMILY_VOICE
    services = SERVICES
    http_routes = {("POST", "/v1/audio/speech"): speech}

    async def __init__(self, config: dict[str, Any]) -> None:
        self.config = VoiceAppConfig.model_validate(config)
        self._start_registry(self.config, VoiceEngine)

    @unary_rpc(voice_pb2.SynthesizeResponse)
    async def Synthesize(
        self, request: voice_pb2.SynthesizeRequest, request_id: str
    ) -> voice_pb2.SynthesizeResponse:
        engine_request = to_engine_request(request, request_id)
        async with self._model(request.model) as engine:

            async def produce() -> voice_pb2.SynthesizeResponse:
                with self._span(engine, "synthesize", engine_request) as observer:
                    speech = await engine.synthesize(engine_request)
                    observer.speech(speech)
                return to_synthesize_response(
                    speech, model=engine.served_id, request_id=request_id
                )

            return await self.cache.unary(
                self.cache.key(engine, "Synthesize", engine_request),
                voice_pb2.SynthesizeResponse,
                request_id,
                produce,
            )

    @stream_rpc
    async def StreamSpeech(
        self, request: voice_pb2.StreamSpeechRequest, request_id: str
    ) -> AsyncIterator[voice_pb2.StreamSpeechResponse]:
        engine_request = to_engine_request(request, request_id)
        async for load in self._loading(request.model):
            yield voice_pb2.StreamSpeechResponse(model_load=load, request_id=request_id)
        async with self._model(request.model) as engine:

            async def produce() -> AsyncIterator[voice_pb2.StreamSpeechResponse]:
                chunks = engine.stream(engine_request)
                with self._span(engine, "stream", engine_request) as observer:
                    async with aclosing(chunks):
                        async for chunk in chunks:
                            observer.chunk(chunk)
                            yield to_stream_response(chunk, request_id=request_id)

            replies = self.cache.stream(
                self.cache.key(engine, "StreamSpeech", engine_request),
                voice_pb2.StreamSpeechResponse,
                request_id,
                produce,
                keep=lambda message: True,
                condense=lambda chunks: chunks if chunks and chunks[-1].last else None,
            )
            async with aclosing(replies):
                async for reply in replies:
                    yield reply

    def request_cost(self, rpc: str, request: Any) -> int:
        """Characters a call asks to synthesize (the voice budget's unit)."""
        return len(request.text) if rpc in ("Synthesize", "StreamSpeech") else 0

    def _span(
        self, engine: VoiceEngine, op: str, request: SpeechRequest
    ) -> AbstractContextManager[SpeechObserver]:
        return request_span(
            op, request, max_segment_chars=engine.config.max_segment_chars
        )
