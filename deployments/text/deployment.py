"""The text family's Ray Serve deployment: the ingress of application `text`.

Tokens cross exactly one Ray hop (proxy -> this replica, which holds vLLM),
over gRPC and over OpenAI-compatible HTTP alike (`openai_api.py`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ray import serve

from deployments.engine_ingress import EngineIngress
from deployments.engines.text.engine import TextEngine
from deployments.engines.text.types import TextDelta
from deployments.ingress import stream_rpc, unary_rpc
from deployments.openai_api.models import list_models
from deployments.openai_api.routes import HttpIngress
from deployments.streaming import MessagePacer, paced
from deployments.text.config import TextAppConfig
from deployments.text.converters import (
    condense_stream,
    to_engine_request,
    to_generate_response,
    to_stream_response,
)
from deployments.text.openai_api import chat_completions, completions
from deployments.text.telemetry import collect, observed
from maestro.v1 import models_pb2, text_pb2

__all__ = ["TextDeployment"]

logger = logging.getLogger("maestro.text")
SERVICES = ("maestro.v1.TextService", "maestro.v1.ModelService")


@serve.deployment(name="Text")
class TextDeployment(HttpIngress, EngineIngress):
    """Serves TextService, ModelService and Health for the text family, and
    OpenAI's chat/completions and model list over HTTP on the same engine."""

    family = "text"
    family_enum = models_pb2.FAMILY_TEXT
    services = SERVICES
    http_routes = {
        ("POST", "/v1/chat/completions"): chat_completions,
        ("POST", "/v1/completions"): completions,
        ("GET", "/v1/models"): list_models,
    }

    async def __init__(self, config: dict[str, Any]) -> None:
        self.config = TextAppConfig.model_validate(config)
        self.pacer = MessagePacer(self.config.stream)
        self._start_registry(self.config, TextEngine)

    @unary_rpc(text_pb2.GenerateTextResponse)
    async def GenerateText(
        self, request: text_pb2.GenerateTextRequest, request_id: str
    ) -> text_pb2.GenerateTextResponse:
        async with self._model(request.model) as engine:
            engine_request = to_engine_request(request, request_id)

            async def produce() -> text_pb2.GenerateTextResponse:
                deltas = engine.stream(engine_request)
                result = await collect(self._observed(engine, deltas, "generate"))
                return to_generate_response(
                    result, model=engine.served_id, request_id=request_id
                )

            return await self.cache.unary(
                self.cache.key(engine, "GenerateText", engine_request),
                text_pb2.GenerateTextResponse,
                request_id,
                produce,
            )

    @stream_rpc
    async def StreamText(
        self, request: text_pb2.StreamTextRequest, request_id: str
    ) -> AsyncIterator[text_pb2.StreamTextResponse]:
        async for load in self._loading(request.model):
            yield text_pb2.StreamTextResponse(model_load=load, request_id=request_id)
        async with self._model(request.model) as engine:
            engine_request = to_engine_request(request, request_id)

            async def produce() -> AsyncIterator[text_pb2.StreamTextResponse]:
                deltas = engine.stream(engine_request)
                deltas = self._observed(engine, deltas, "stream")
                model = engine.served_id
                messages = paced(
                    deltas, self.pacer, is_last=lambda d: d.finish_reason is not None
                )
                async with aclosing(messages):
                    async for delta in messages:
                        yield to_stream_response(
                            delta, model=model, request_id=request_id
                        )

            replies = self.cache.stream(
                self.cache.key(engine, "StreamText", engine_request),
                text_pb2.StreamTextResponse,
                request_id,
                produce,
                keep=lambda message: True,
                condense=condense_stream,
            )
            async with aclosing(replies):
                async for reply in replies:
                    yield reply

    def _ingress_stats(self) -> dict[str, str]:
        return {"open_streams": str(self.pacer.open_streams)}

    def _observed(
        self, engine: TextEngine, deltas: AsyncIterator[TextDelta], op: str
    ) -> AsyncIterator[TextDelta]:
        return observed(deltas, op=op, running=engine.num_unfinished_requests)
