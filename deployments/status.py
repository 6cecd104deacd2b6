"""The one mapping from exceptions to what a client is told.

`classify` turns any exception — a `MaestroError`, one of Ray's errors
wrapping what a family raised behind a `DeploymentHandle`, or a bug — into an
`ErrorKind` and a client-safe message; `to_status` adds the gRPC code from one
table, and `HTTP_STATUS` turns that code into the HTTP status (with OpenAI's
error type) the HTTP layer answers with. Nothing else in Maestro decides a
status code.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc

from deployments.errors import ErrorKind, MaestroError

__all__ = [
    "GRPC_CODES",
    "HTTP_STATUS",
    "classify",
    "code_name",
    "http_status",
    "to_status",
]

logger = logging.getLogger("maestro.status")

GRPC_CODES: dict[ErrorKind, grpc.StatusCode] = {
    kind: getattr(grpc.StatusCode, kind.name) for kind in ErrorKind
}
GENERIC_INTERNAL = "internal error; see the server log"


def classify(exc: BaseException) -> tuple[ErrorKind, str]:
    """The kind and client-safe message for any exception.

    Ray hands a handle caller (the studio) the family's exception wrapped in a
    `RayTaskError` (whose text includes the remote traceback); its cause is
    the MaestroError the family raised. Ray's own errors map to the kinds its
    proxy would answer with. Anything else is INTERNAL with a generic message.
    """
    # Ray's errors first: a RayTaskError wrapping a MaestroError is also an
    # instance of it (`as_instanceof_cause`), but its text is Ray's traceback.
    if "ray.exceptions" in sys.modules:  # else it cannot be one of Ray's
        found = _classify_ray(exc)
        if found is not None:
            return found
    if isinstance(exc, MaestroError):
        return exc.kind, str(exc)
    if isinstance(exc, asyncio.CancelledError):
        return ErrorKind.CANCELLED, "cancelled"
    return ErrorKind.INTERNAL, GENERIC_INTERNAL


def _classify_ray(exc: BaseException) -> tuple[ErrorKind, str] | None:
    from ray import exceptions as ray_exceptions
    from ray.serve import exceptions as serve_exceptions

    if isinstance(exc, ray_exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, BaseException) and cause is not exc:
            return classify(cause)
        return None
    if isinstance(exc, serve_exceptions.BackPressureError):
        return ErrorKind.RESOURCE_EXHAUSTED, "family queue is full"
    if isinstance(exc, serve_exceptions.RequestCancelledError):
        return ErrorKind.CANCELLED, "cancelled"
    if isinstance(exc, serve_exceptions.DeploymentUnavailableError):
        return ErrorKind.UNAVAILABLE, "family deployment unavailable"
    if isinstance(
        exc, ray_exceptions.ActorDiedError | ray_exceptions.ActorUnavailableError
    ):
        return ErrorKind.UNAVAILABLE, "family replica unavailable"
    return None


# Details travel percent-encoded in one HTTP/2 trailer; a long echo of a
# request field (a model name of 100k characters) would burst the peer's
# header limits and turn the answer into a reset.
MAX_DETAILS_BYTES = 1000  # UTF-8; at most ~3 kB once percent-encoded


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and client-safe details for any exception."""
    kind, message = classify(exc)
    if len(encoded := message.encode()) > MAX_DETAILS_BYTES:
        cut = encoded[: MAX_DETAILS_BYTES - 15].decode(errors="ignore")
        message = cut + "... [truncated]"
    return GRPC_CODES[kind], message


def code_name(exc: BaseException) -> str:
    """The status code's name ("INVALID_ARGUMENT", ...) for spans and metrics."""
    return classify(exc)[0].name


# The HTTP layer (deployments.openai_api) runs the same RPC code and reads the
# gRPC code it set: this is its status, and the `type` of OpenAI's error JSON
# that clients such as the `openai` SDKs map to their exception classes.
HTTP_STATUS: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.INTERNAL: (500, "server_error"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "not_implemented_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
}


def http_status(code: grpc.StatusCode) -> tuple[int, str]:
    """The HTTP status and OpenAI error type for a gRPC code (500 if unmapped)."""
    return HTTP_STATUS.get(code, (500, "server_error"))
