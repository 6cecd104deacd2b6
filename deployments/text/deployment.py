"""The text family's Ray Serve deployment: the ingress of application `text`.

Tokens cross exactly one Ray hop (proxy -> this replica, which holds vLLM).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ray import serve

from deployments.engine_ingress import EngineIngress
from deployments.engines.text import TextEngine
from deployments.engines.text_types import TextDelta
from deployments.ingress import stream_rpc, unary_rpc
from deployments.placement import replica_placement
from deployments.streaming import MessagePacer, paced
from deployments.text.config import TextAppConfig
from deployments.text.converters import (
    to_engine_request,
    to_generate_response,
    to_stream_response,
)
from deployments.text.telemetry import collect, observed
from maestro.v1 import models_pb2, text_pb2

__all__ = ["TextDeployment"]

logger = logging.getLogger("maestro.text")
SERVICES = ("maestro.v1.TextService", "maestro.v1.ModelService")


@serve.deployment(name="Text")
class TextDeployment(EngineIngress):
    """Serves TextService, ModelService and Health for the text family."""

    family = "text"
    services = SERVICES

    async def __init__(self, config: dict[str, Any]) -> None:
        self.config = TextAppConfig.model_validate(config)
        self.pacer = MessagePacer(self.config.stream)
        self._start_in_background(TextEngine(self.config.engine))

    @unary_rpc(text_pb2.GenerateTextResponse)
    async def GenerateText(
        self, request: text_pb2.GenerateTextRequest, request_id: str
    ) -> text_pb2.GenerateTextResponse:
        await self._engine_ready()
        self.engine.check_model(request.model)
        deltas = self.engine.stream(to_engine_request(request, request_id))
        result = await collect(self._observed(deltas, "generate"))
        return to_generate_response(
            result, model=self.engine.config.served_id, request_id=request_id
        )

    @stream_rpc
    async def StreamText(
        self, request: text_pb2.StreamTextRequest, request_id: str
    ) -> AsyncIterator[text_pb2.StreamTextResponse]:
        await self._engine_ready()
        self.engine.check_model(request.model)
        deltas = self.engine.stream(to_engine_request(request, request_id))
        deltas = self._observed(deltas, "stream")
        model = self.engine.config.served_id
        messages = paced(
            deltas, self.pacer, is_last=lambda d: d.finish_reason is not None
        )
        async with aclosing(messages):
            async for delta in messages:
                yield to_stream_response(delta, model=model, request_id=request_id)

    def _observed(
        self, deltas: AsyncIterator[TextDelta], op: str
    ) -> AsyncIterator[TextDelta]:
        return observed(deltas, op=op, running=self.engine.num_unfinished_requests)

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(models=[self._model_info()])

    def _model_info(self) -> models_pb2.ModelInfo:
        engine = self.engine
        limits = engine.limits
        return models_pb2.ModelInfo(
            id=engine.config.served_id,
            family=models_pb2.FAMILY_TEXT,
            engine=engine.engine_name,
            device=engine.device,
            ready=engine.ready,
            status_message=engine.status_message,
            limits={}
            if limits is None
            else {
                "max_model_len": str(limits.max_model_len),
                "default_max_tokens": str(limits.default_max_tokens),
                "max_stop_strings": str(limits.max_stop_strings),
                "temperature": "0..2",
                "top_p": "(0, 1]",
                "structured_output": "json_schema, regex, choices",
            },
            stats={
                "unfinished_requests": str(engine.num_unfinished_requests()),
                "open_streams": str(self.pacer.open_streams),
                **replica_placement(),
            },
        )
