"""A stand-in with the text family's deployment name and resource shape.

Scheduling tests deploy it as application `text` with the profile's
`ray_actor_options` (e.g. `num_gpus: 0.4`): Ray places it exactly as it would
place the vLLM replica, without spending ~30 s of two CPU cores starting vLLM.
It answers ListModels (with the replica's GPU ids) and Health like a family.
"""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve import Application

from deployments.placement import replica_placement
from maestro.v1 import models_pb2


@serve.deployment(name="Text")
class TextShape:
    async def ListModels(self, request: Any) -> models_pb2.ListModelsResponse:
        info = models_pb2.ModelInfo(
            id="text-shape",
            family=models_pb2.FAMILY_TEXT,
            engine="none (scheduling stand-in)",
            device="none",
            ready=True,
            stats=replica_placement(),
        )
        return models_pb2.ListModelsResponse(models=[info])

    async def Check(self, request: Any) -> health_pb2.HealthCheckResponse:
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING
        )


def build_text_shape(args: dict[str, Any]) -> Application:
    return TextShape.bind()
