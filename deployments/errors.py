"""Maestro's one exception hierarchy, free of any transport.

Engines and deployments raise these; each carries a `kind` saying what went
wrong in transport-neutral terms. `deployments.status` maps kinds (and Ray's
wrapped errors) to gRPC status codes in one table; an HTTP table will sit
beside it. Unknown exceptions become INTERNAL with a generic message: details
go to the log, never onto the wire.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "Cancelled",
    "ChildFailed",
    "ErrorKind",
    "InvalidArgument",
    "MaestroError",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]


class ErrorKind(enum.Enum):
    """What went wrong; named like the gRPC codes users already know."""

    INVALID_ARGUMENT = "invalid_argument"  # the request is outside the limits
    NOT_FOUND = "not_found"  # unknown model, adapter, voice
    RESOURCE_EXHAUSTED = "resource_exhausted"  # over a limit: retry later
    UNAVAILABLE = "unavailable"  # not ready, or a replica went away
    UNIMPLEMENTED = "unimplemented"  # in the contract, not served yet
    CANCELLED = "cancelled"  # aborted inside the engine
    UNAUTHENTICATED = "unauthenticated"  # no key, or an unknown one
    PERMISSION_DENIED = "permission_denied"  # a key outside its scopes
    INTERNAL = "internal"  # a bug: details in the log only


class MaestroError(Exception):
    """Base of every error Maestro reports to a client on purpose."""

    kind: ErrorKind = ErrorKind.INTERNAL


class InvalidArgument(MaestroError):
    """A request field is outside what the server accepts."""

    kind = ErrorKind.INVALID_ARGUMENT

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

    kind = ErrorKind.NOT_FOUND

    def __init__(self, *, what: str, name: str, available: list[str]) -> None:
        self.what, self.name, self.available = what, name, available
        super().__init__(
            f"{what} {_short(name)} not found; "
            f"available: {', '.join(available) or 'none'}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"what": self.what, "name": self.name, "available": self.available}
        return _rebuild, (type(self), kwargs, str(self))


class ResourceExhausted(MaestroError):
    """The server is over a configured limit; retry later or send less."""

    kind = ErrorKind.RESOURCE_EXHAUSTED


class Unauthenticated(MaestroError):
    """No API key, or one the server does not know (which, it never says)."""

    kind = ErrorKind.UNAUTHENTICATED


class PermissionDenied(MaestroError):
    """A known key calling outside its scopes."""

    kind = ErrorKind.PERMISSION_DENIED


class QuotaExceeded(MaestroError):
    """A key's quota is used up until `retry_after_s` from now."""

    kind = ErrorKind.RESOURCE_EXHAUSTED

    def __init__(self, *, quota: str, limit: int, retry_after_s: float) -> None:
        self.quota, self.limit, self.retry_after_s = quota, limit, retry_after_s
        super().__init__(
            f"quota {quota} exceeded (limit {limit}); "
            f"retry in {max(retry_after_s, 0.0):.1f} s"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "quota": self.quota,
            "limit": self.limit,
            "retry_after_s": self.retry_after_s,
        }
        return _rebuild, (type(self), kwargs, str(self))


class Unavailable(MaestroError):
    """The engine is not ready (still loading, or stopped)."""

    kind = ErrorKind.UNAVAILABLE


class Unimplemented(MaestroError):
    """The RPC belongs to the contract but is not served yet."""

    kind = ErrorKind.UNIMPLEMENTED


class Cancelled(MaestroError):
    """The request was aborted inside the engine."""

    kind = ErrorKind.CANCELLED


class ChildFailed(MaestroError):
    """A call to another family failed; carries that family's error kind."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        self.kind = kind
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.kind, str(self))


def _rebuild(cls: type[MaestroError], kwargs: dict[str, Any], text: str) -> Any:
    """Unpickle an error with keyword-only fields; keeps its exact message."""
    error = cls(**kwargs)
    error.args = (text,)
    return error


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
