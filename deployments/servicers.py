"""The servicer functions serve configs name in `grpc_options.grpc_servicer_functions`.

Each is the generated `add_*Servicer_to_server` with one change: the request
deserializer never raises. Ray Serve registers these on its gRPC server (the
ingress replica's, or its proxy's) and keeps their deserializers; when bytes
are not the request message, grpcio itself would answer `UNKNOWN: Unexpected
<class 'google.protobuf.message.DecodeError'>: ...` — a Python class name on
the wire — before any Maestro code runs. Here such bytes become an
`UndecodableRequest`, which the ingress layer answers with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2_grpc

from deployments.errors import InvalidArgument
from maestro.v1 import (
    image_pb2_grpc,
    models_pb2_grpc,
    studio_pb2_grpc,
    text_pb2_grpc,
    voice_pb2_grpc,
)

__all__ = [
    "UndecodableRequest",
    "add_HealthServicer_to_server",
    "add_ImageServiceServicer_to_server",
    "add_ModelServiceServicer_to_server",
    "add_StudioServiceServicer_to_server",
    "add_TextServiceServicer_to_server",
    "add_VoiceServiceServicer_to_server",
]


class UndecodableRequest:
    """Stands in for a request whose bytes did not parse; carries the error."""

    request_id = ""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        self.decode_error = InvalidArgument(
            field="request",
            allowed=f"a serialized {message_type} message",
            reason="the body is not a valid protobuf message",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray's Python proxy pickles requests to the replica.
        return UndecodableRequest, (self.message_type,)


def _input_type(service_method: str) -> str:
    """`/maestro.v1.TextService/GenerateText` -> `maestro.v1.GenerateTextRequest`."""
    service, _, method = service_method.strip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return "request"
    return str(found.input_type.full_name)


def _lenient(deserializer: Callable[[bytes], Any] | None, message_type: str) -> Any:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return UndecodableRequest(message_type)

    return parse


def _with_lenient(service_method: str, handler: Any) -> Any:
    message_type = _input_type(service_method)
    return handler._replace(
        request_deserializer=_lenient(handler.request_deserializer, message_type)
    )


class _LenientServer:
    """Hands the generated registration code's handlers on, deserializers swapped."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, generic_handlers: Any) -> None:
        for generic in generic_handlers:
            generic._method_handlers = {
                name: _with_lenient(name, handler)
                for name, handler in generic._method_handlers.items()
            }
        self._server.add_generic_rpc_handlers(generic_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, Any]
    ) -> None:
        add = getattr(self._server, "add_registered_method_handlers", None)
        if add is None:
            return
        add(
            service_name,
            {
                name: _with_lenient(f"/{service_name}/{name}", handler)
                for name, handler in method_handlers.items()
            },
        )


def _lenient_registration(
    add: Callable[[Any, Any], None],
) -> Callable[[Any, Any], None]:
    def register(servicer: Any, server: Any) -> None:
        add(servicer, _LenientServer(server))

    register.__name__ = add.__name__
    register.__doc__ = f"`{add.__module__}.{add.__name__}`, never raising on bad bytes."
    return register


add_TextServiceServicer_to_server = _lenient_registration(
    text_pb2_grpc.add_TextServiceServicer_to_server
)
add_ImageServiceServicer_to_server = _lenient_registration(
    image_pb2_grpc.add_ImageServiceServicer_to_server
)
add_VoiceServiceServicer_to_server = _lenient_registration(
    voice_pb2_grpc.add_VoiceServiceServicer_to_server
)
add_StudioServiceServicer_to_server = _lenient_registration(
    studio_pb2_grpc.add_StudioServiceServicer_to_server
)
add_ModelServiceServicer_to_server = _lenient_registration(
    models_pb2_grpc.add_ModelServiceServicer_to_server
)
add_HealthServicer_to_server = _lenient_registration(
    health_pb2_grpc.add_HealthServicer_to_server
)
