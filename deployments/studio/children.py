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

from deployments.ingress import cache_mode, current_caller

__all__ = ["Handle", "InFlight", "call_child"]

logger = logging.getLogger("maestro.studio")


class Response(Protocol):
    """What the studio needs of a `DeploymentResponse`."""

    def cancel(self) -> None: ...
    def __await__(self) -> Any: ...


class Handle(Protocol):
    """A `DeploymentHandle` (or a test's fake): `handle.Method.remote(req)`."""

    def __getattr__(self, name: str) -> Any: ...


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
    """`await handle.<method>.remote(request)`, cancelled with its awaiter.

    The call carries the API key name of the Compose it serves, so the
    family charges its budgets to that key (the key was checked here), and
    its cache directive (`x-maestro-cache`; bypass for an unseeded Compose),
    and goes to a replica holding the model it names (`deployments.routing`).
    """
    caller, mode = current_caller(), cache_mode()
    extra = {"maestro_caller": caller} if caller else {}
    if mode:
        extra["maestro_cache"] = mode
    if getattr(request, "model", ""):  # to a replica that holds it (routing)
        handle = handle.options(multiplexed_model_id=request.model)
    response = getattr(handle, method).remote(request, **extra)
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
