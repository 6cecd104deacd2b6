"""The `application` routing key every call carries, and a channel that adds it.

Ray Serve's proxy routes a call to an application by the `application`
metadata key; each family is one application. A call that names a model also
carries it as `multiplexed_model_id` (Ray Serve's key), which Maestro's
HAProxy ingress balances on: the calls for one model go to one replica.
"""

from __future__ import annotations

import collections
from typing import Any

import grpc

__all__ = ["FAMILIES", "MODEL_HEADER", "route", "routed_channel"]

FAMILIES = ("text", "image", "voice", "studio")
MODEL_HEADER = "multiplexed_model_id"


def route(family: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that routes a call to `family`'s application."""
    return (("application", family),)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        (
            "method",
            "timeout",
            "metadata",
            "credentials",
            "wait_for_ready",
            "compression",
        ),
    ),
    grpc.ClientCallDetails,
):
    pass


class _RouteInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the `application` key to every call that does not carry one."""

    def __init__(self, family: str) -> None:
        self._route = route(family)

    def _details(self, details: Any) -> _CallDetails:
        metadata = list(details.metadata or ())
        if not any(key == "application" for key, _ in metadata):
            metadata.extend(self._route)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    intercept_unary_stream = intercept_unary_unary

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)

    intercept_stream_stream = intercept_stream_unary


def routed_channel(channel: grpc.Channel, family: str) -> grpc.Channel:
    """`channel` with every call routed to one application.

    For generic stubs and tools that cannot set metadata per call, such as
    grpcio-reflection's descriptor database (reflection, like any call through
    the HAProxy ingress, needs a routing key; any family answers it).
    """
    return grpc.intercept_channel(channel, _RouteInterceptor(family))
