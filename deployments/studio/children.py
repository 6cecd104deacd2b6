"""Calls to the family deployments, and what their failures mean.

A child call goes through a `DeploymentHandle`: `handle.Method.remote(request)`
returns a `DeploymentResponse`. Cancelling the task that awaits it does *not*
stop the child in Ray Serve 2.60 (`DeploymentResponse.__await__` only
re-raises); `response.cancel()` does (`ray.cancel` on the replica's task, which
raises `CancelledError` inside the family's RPC, so its engine aborts the
request). `call_child` therefore cancels the response whenever its awaiter is
cancelled, and `InFlight` lets the studio cancel every child at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import grpc

from deployments.errors import MaestroError, to_status

__all__ = ["ChildFailed", "Handle", "InFlight", "call_child", "child_status"]

logger = logging.getLogger("maestro.studio")


class Response(Protocol):
    """What the studio needs of a `DeploymentResponse`."""

    def cancel(self) -> None: ...
    def __await__(self) -> Any: ...


class Handle(Protocol):
    """A `DeploymentHandle` (or a test's fake): `handle.Method.remote(req)`."""

    def __getattr__(self, name: str) -> Any: ...


class ChildFailed(MaestroError):
    """A family call failed; carries that family's status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.code, str(self))


class InFlight:
    """The child responses of one Compose call that have not finished."""

    def __init__(self) -> None:
        self._responses: set[Any] = set()

    def add(self, response: Any) -> None:
        self._responses.add(response)

    def discard(self, response: Any) -> None:
        self._responses.discard(response)

    def __len__(self) -> int:
        return len(self._responses)

    def cancel_all(self) -> None:
        """Synchronous, so it also works from a `finally` being cancelled."""
        for response in list(self._responses):
            _cancel(response)
        self._responses.clear()


async def call_child(
    handle: Handle, method: str, request: Any, inflight: InFlight
) -> Any:
    """`await handle.<method>.remote(request)`, cancelled with its awaiter."""
    response = getattr(handle, method).remote(request)
    inflight.add(response)
    try:
        return await response
    except asyncio.CancelledError:
        _cancel(response)
        raise
    finally:
        inflight.discard(response)


def _cancel(response: Any) -> None:
    try:
        response.cancel()
    except Exception:  # best effort: the child may have just finished
        logger.debug("cancelling a child call failed", exc_info=True)


def child_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-safe message of a failed child call.

    Ray hands the caller the family's exception wrapped in a `RayTaskError`
    (whose text includes the remote traceback); the cause is the MaestroError
    the family raised. Ray's own errors map to the codes the proxy would give.
    """
    from ray import exceptions as ray_exceptions
    from ray.serve import exceptions as serve_exceptions

    if isinstance(exc, ChildFailed):
        return exc.code, str(exc)
    if isinstance(exc, ray_exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, BaseException) and cause is not exc:
            return child_status(cause)
    if isinstance(exc, MaestroError):
        return to_status(exc)
    if isinstance(exc, serve_exceptions.BackPressureError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "family queue is full"
    if isinstance(exc, serve_exceptions.RequestCancelledError | asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, "cancelled"
    if isinstance(exc, serve_exceptions.DeploymentUnavailableError):
        return grpc.StatusCode.UNAVAILABLE, "family deployment unavailable"
    if isinstance(
        exc, ray_exceptions.ActorDiedError | ray_exceptions.ActorUnavailableError
    ):
        return grpc.StatusCode.UNAVAILABLE, "family replica unavailable"
    logger.error("child call failed unexpectedly", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error; see the server log"
