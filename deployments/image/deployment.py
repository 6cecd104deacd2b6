"""The image family's Ray Serve deployment: the ingress of application `image`.

Progress events and images cross exactly one Ray hop (proxy -> this replica,
which holds the diffusers pipeline). The pipeline computes on the engine's
worker thread, so this replica's event loop keeps answering Health,
ListModels and new requests (which join the next batch) meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, aclosing
from typing import Any

from ray import serve

from deployments.engine_ingress import EngineIngress
from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.types import ImageRequest, ImageResult
from deployments.engines.image.video.types import VideoResult
from deployments.image.config import ImageAppConfig
from deployments.image.converters import (
    to_engine_request,
    to_generate_response,
    to_progress_response,
    to_result_response,
    to_video_request,
    to_video_response,
    to_video_result_response,
)
from deployments.image.openai_api import image_generations
from deployments.image.telemetry import (
    BatchSizes,
    request_span,
    video_span,
    watch_batches,
)
from deployments.ingress import stream_rpc, unary_rpc
from deployments.openai_api.routes import HttpIngress
from maestro.v1 import image_pb2, models_pb2

__all__ = ["ImageDeployment"]

logger = logging.getLogger("maestro.image")
SERVICES = ("maestro.v1.ImageService", "maestro.v1.ModelService")


@serve.deployment(name="Image")
class ImageDeployment(HttpIngress, EngineIngress):
    """Serves ImageService, ModelService and Health for the image family, and
    OpenAI's images/generations over HTTP."""

    family = "image"
    family_enum = models_pb2.FAMILY_IMAGE
    services = SERVICES
    http_routes = {("POST", "/v1/images/generations"): image_generations}

    async def __init__(self, config: dict[str, Any]) -> None:
        self.config = ImageAppConfig.model_validate(config)
        self._batch_sizes = BatchSizes()
        self._start_registry(self.config, self._make_engine)

    def _make_engine(self, config: ImageEngineConfig) -> ImageEngine:
        engine = ImageEngine(config)
        watch_batches(engine, self._batch_sizes)
        return engine

    @unary_rpc(image_pb2.GenerateImageResponse)
    async def GenerateImage(
        self, request: image_pb2.GenerateImageRequest, request_id: str
    ) -> image_pb2.GenerateImageResponse:
        engine_request = to_engine_request(request, request_id)
        async with self._model(request.model) as engine:

            async def produce() -> image_pb2.GenerateImageResponse:
                with self._span(engine, "generate", engine_request) as on_result:
                    result = await engine.generate(engine_request)
                    on_result(result)
                return to_generate_response(
                    result, model=engine.served_id, request_id=request_id
                )

            return await self.cache.unary(
                self.cache.key(engine, "GenerateImage", engine_request),
                image_pb2.GenerateImageResponse,
                request_id,
                produce,
            )

    @stream_rpc
    async def StreamImage(
        self, request: image_pb2.StreamImageRequest, request_id: str
    ) -> AsyncIterator[image_pb2.StreamImageResponse]:
        engine_request = to_engine_request(request, request_id)
        async for load in self._loading(request.model):
            yield image_pb2.StreamImageResponse(model_load=load)
        async with self._model(request.model) as engine:

            async def produce() -> AsyncIterator[image_pb2.StreamImageResponse]:
                model = engine.served_id
                events = engine.stream(engine_request)
                with self._span(engine, "stream", engine_request) as on_result:
                    async with aclosing(events):  # leaving early cancels it
                        async for event in events:
                            if isinstance(event, ImageResult):
                                on_result(event)
                                yield to_result_response(
                                    event, model=model, request_id=request_id
                                )
                            else:
                                yield to_progress_response(event)

            replies = self.cache.stream(
                self.cache.key(engine, "StreamImage", engine_request),
                image_pb2.StreamImageResponse,
                request_id,
                produce,
                keep=lambda message: message.WhichOneof("event") == "result",
            )
            async with aclosing(replies):
                async for reply in replies:
                    yield reply

    @unary_rpc(image_pb2.GenerateVideoResponse)
    async def GenerateVideo(
        self, request: image_pb2.GenerateVideoRequest, request_id: str
    ) -> image_pb2.GenerateVideoResponse:
        engine_request = to_video_request(request, request_id)
        async with self._model(request.model) as engine:

            async def produce() -> image_pb2.GenerateVideoResponse:
                with video_span("generate", engine_request) as on_result:
                    result = await engine.generate_video(engine_request)
                    on_result(result)
                return to_video_response(
                    result, model=engine.served_id, request_id=request_id
                )

            return await self.cache.unary(
                self.cache.key(engine, "GenerateVideo", engine_request),
                image_pb2.GenerateVideoResponse,
                request_id,
                produce,
            )

    @stream_rpc
    async def StreamVideo(
        self, request: image_pb2.StreamVideoRequest, request_id: str
    ) -> AsyncIterator[image_pb2.StreamVideoResponse]:
        engine_request = to_video_request(request, request_id)
        async for load in self._loading(request.model):
            yield image_pb2.StreamVideoResponse(model_load=load)
        async with self._model(request.model) as engine:

            async def produce() -> AsyncIterator[image_pb2.StreamVideoResponse]:
                model = engine.served_id
                events = engine.stream_video(engine_request)
                with video_span("stream", engine_request) as on_result:
                    async with aclosing(events):  # leaving early cancels it
                        async for event in events:
                            if isinstance(event, VideoResult):
                                on_result(event)
                                yield to_video_result_response(
                                    event, model=model, request_id=request_id
                                )
                            else:
                                progress = to_progress_response(event).progress
                                yield image_pb2.StreamVideoResponse(progress=progress)

            replies = self.cache.stream(
                self.cache.key(engine, "StreamVideo", engine_request),
                image_pb2.StreamVideoResponse,
                request_id,
                produce,
                keep=lambda message: message.WhichOneof("event") == "result",
            )
            async with aclosing(replies):
                async for reply in replies:
                    yield reply

    def request_cost(self, rpc: str, request: Any) -> int:
        """Pixel-steps a call asks for (the image budget's unit): a clip
        counts every generated frame."""
        if rpc not in ("GenerateImage", "StreamImage", "GenerateVideo", "StreamVideo"):
            return 0
        engine = self.registry.current(request.model) or self.engine  # NOT_FOUND
        limits = engine.limits if engine is not None else None
        if limits is None:  # before the first load: the budget counts 0
            return 0
        if rpc.endswith("Video"):
            video = engine.video_limits
            if video is None:  # refused as INVALID_ARGUMENT by the call itself
                return 0
            width = request.width or video.default_width
            height = request.height or video.default_height
            steps = request.steps or video.default_steps
            return width * height * steps * (request.num_frames or video.default_frames)
        width = request.width or limits.default_width
        height = request.height or limits.default_height
        steps = request.steps or limits.default_steps
        return width * height * steps * max(request.num_images, 1)

    def _span(
        self, engine: ImageEngine, op: str, request: ImageRequest
    ) -> AbstractContextManager[Callable[[ImageResult], None]]:
        limits = engine.limits
        return request_span(
            op,
            request,
            default_steps=limits.default_steps if limits else 0,
            batch_sizes=self._batch_sizes,
        )
