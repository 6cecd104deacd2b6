"""Maestro's one exception hierarchy and its one mapping to gRPC status codes.

Engines raise these (they never import grpc); the ingress layer turns any
exception into a status with `to_status`. Unknown exceptions become INTERNAL
with a generic message: details go to the log, never onto the wire.
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "Cancelled",
    "InvalidArgument",
    "MaestroError",
    "NotFound",
    "ResourceExhausted",
    "Unavailable",
    "Unimplemented",
    "to_status",
]


class MaestroError(Exception):
    """Base of every error Maestro reports to a client on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(MaestroError):
    """A request field is outside what the server accepts."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self, *, field: str, allowed: str, value: Any = None, reason: str = ""
    ) -> None:
        self.field, self.allowed, self.value = field, allowed, value
        shown = "" if value is None else f" (got {_short(value)})"
        why = f": {reason}" if reason else ""
        super().__init__(f"{field}{why}{shown}; allowed: {allowed}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields: pickle (a DeploymentHandle caller gets this
        # error through Ray) cannot rebuild it from `args` alone.
        kwargs = {"field": self.field, "allowed": self.allowed, "value": self.value}
        return _rebuild, (type(self), kwargs, str(self))


class NotFound(MaestroError):
    """A model, adapter or voice the request names does not exist here."""

    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, *, kind: str, name: str, available: list[str]) -> None:
        self.kind, self.name, self.available = kind, name, available
        super().__init__(
            f"{kind} {name!r} not found; available: {', '.join(available) or 'none'}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"kind": self.kind, "name": self.name, "available": self.available}
        return _rebuild, (type(self), kwargs, str(self))


class ResourceExhausted(MaestroError):
    """The server is over a configured limit; retry later or send less."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(MaestroError):
    """The engine is not ready (still loading, or stopped)."""

    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(MaestroError):
    """The RPC belongs to the contract but is not served yet."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(MaestroError):
    """The request was aborted inside the engine."""

    code = grpc.StatusCode.CANCELLED


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-safe details for any exception."""
    if isinstance(exc, MaestroError):
        return exc.code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error; see the server log"


def _rebuild(cls: type[MaestroError], kwargs: dict[str, Any], text: str) -> Any:
    """Unpickle an error with keyword-only fields; keeps its exact message."""
    error = cls(**kwargs)
    error.args = (text,)
    return error


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
