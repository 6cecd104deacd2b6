"""`grpc.health.v1.Health/Check`, answered by every application's ingress."""

from __future__ import annotations

from grpc_health.v1 import health_pb2

from deployments.errors import NotFound

__all__ = ["health_response"]

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_response(
    request: health_pb2.HealthCheckRequest, *, services: tuple[str, ...], ready: bool
) -> health_pb2.HealthCheckResponse:
    """SERVING once the engine is ready; "" asks about the whole application."""
    if request.service and request.service not in services:
        raise NotFound(what="service", name=request.service, available=list(services))
    return health_pb2.HealthCheckResponse(status=_SERVING if ready else _NOT_SERVING)
