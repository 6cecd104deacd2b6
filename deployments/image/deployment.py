"""The image family's Ray Serve deployment: the ingress of application `image`.

Progress events and images cross exactly one Ray hop (proxy -> this replica,
which holds the diffusers pipeline). The pipeline computes on the engine's
worker thread, so this replica's event loop keeps answering Health,
ListModels and new requests (which join the next batch) meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ray import serve

from deployments.engine_ingress import EngineIngress
from deployments.engines.image import ImageEngine
from deployments.engines.image_types import ImageResult
from deployments.image.config import ImageAppConfig
from deployments.image.converters import (
    to_engine_request,
    to_generate_response,
    to_progress_response,
    to_result_response,
)
from deployments.ingress import stream_rpc, unary_rpc
from maestro.v1 import image_pb2, models_pb2

__all__ = ["ImageDeployment"]

logger = logging.getLogger("maestro.image")
SERVICES = ("maestro.v1.ImageService", "maestro.v1.ModelService")


@serve.deployment(name="Image")
class ImageDeployment(EngineIngress):
    """Serves ImageService, ModelService and Health for the image family."""

    family = "image"
    services = SERVICES

    async def __init__(self, config: dict[str, Any]) -> None:
        self.config = ImageAppConfig.model_validate(config)
        self._start_in_background(ImageEngine(self.config.engine))

    @unary_rpc(image_pb2.GenerateImageResponse)
    async def GenerateImage(
        self, request: image_pb2.GenerateImageRequest, request_id: str
    ) -> image_pb2.GenerateImageResponse:
        self.engine.check_model(request.model)
        result = await self.engine.generate(to_engine_request(request, request_id))
        return to_generate_response(
            result, model=self.engine.config.served_id, request_id=request_id
        )

    @stream_rpc
    async def StreamImage(
        self, request: image_pb2.StreamImageRequest, request_id: str
    ) -> AsyncIterator[image_pb2.StreamImageResponse]:
        self.engine.check_model(request.model)
        model = self.engine.config.served_id
        events = self.engine.stream(to_engine_request(request, request_id))
        async with aclosing(events):  # leaving early cancels the request
            async for event in events:
                if isinstance(event, ImageResult):
                    yield to_result_response(event, model=model, request_id=request_id)
                else:
                    yield to_progress_response(event)

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(models=[self._model_info()])

    def _model_info(self) -> models_pb2.ModelInfo:
        engine = self.engine
        return models_pb2.ModelInfo(
            id=engine.config.served_id,
            family=models_pb2.FAMILY_IMAGE,
            engine=engine.engine_name,
            device=engine.device,
            ready=engine.ready,
            status_message=engine.status_message,
            limits=engine.limits_info(),
            stats=engine.stats(),
        )
