"""Ingresses for families whose engines have not landed yet.

They keep the whole contract reachable: every RPC of the family answers
UNIMPLEMENTED, ListModels answers with no models and Health with NOT_SERVING.
Each is replaced by the family's real deployment when it lands.
"""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve import Application

from deployments.health import health_response
from deployments.ingress import unary_rpc, unimplemented
from maestro.v1 import image_pb2, models_pb2, studio_pb2, voice_pb2

__all__ = ["build_image_app", "build_studio_app", "build_voice_app"]

# family -> (service, {rpc: (response type, server-streaming?)})
_CONTRACT: dict[str, tuple[str, dict[str, tuple[Any, bool]]]] = {
    "image": (
        "maestro.v1.ImageService",
        {
            "GenerateImage": (image_pb2.GenerateImageResponse, False),
            "StreamImage": (image_pb2.StreamImageResponse, True),
        },
    ),
    "voice": (
        "maestro.v1.VoiceService",
        {
            "Synthesize": (voice_pb2.SynthesizeResponse, False),
            "StreamSpeech": (voice_pb2.StreamSpeechResponse, True),
        },
    ),
    "studio": (
        "maestro.v1.StudioService",
        {"Compose": (studio_pb2.ComposeResponse, True)},
    ),
}


@unary_rpc(models_pb2.ListModelsResponse)
async def _list_models(
    self: Any, request: models_pb2.ListModelsRequest, request_id: str
) -> models_pb2.ListModelsResponse:
    return models_pb2.ListModelsResponse()


def _pending_class(family: str) -> type:
    service, rpcs = _CONTRACT[family]

    @unary_rpc(health_pb2.HealthCheckResponse)
    async def check(
        self: Any, request: health_pb2.HealthCheckRequest, request_id: str
    ) -> health_pb2.HealthCheckResponse:
        services = (service, "maestro.v1.ModelService")
        return health_response(request, services=services, ready=False)

    check.__name__ = "Check"
    methods: dict[str, Any] = {
        name: unimplemented(name, response, streaming=streaming, family=family)
        for name, (response, streaming) in rpcs.items()
    }
    name = f"Pending{family.title()}"
    cls = type(name, (), {**methods, "ListModels": _list_models, "Check": check})
    cls.__module__, cls.__qualname__ = __name__, name
    return cls


PendingImage = _pending_class("image")
PendingVoice = _pending_class("voice")
PendingStudio = _pending_class("studio")


def _build(cls: type, args: dict[str, Any] | None) -> Application:
    if args:
        raise ValueError(f"{cls.__name__} takes no args, got {sorted(args)}")
    return serve.deployment(
        cls, name=cls.__name__, ray_actor_options={"num_cpus": 0}
    ).bind()


def build_image_app(args: dict[str, Any] | None = None) -> Application:
    return _build(PendingImage, args)


def build_voice_app(args: dict[str, Any] | None = None) -> Application:
    return _build(PendingVoice, args)


def build_studio_app(args: dict[str, Any] | None = None) -> Application:
    return _build(PendingStudio, args)
