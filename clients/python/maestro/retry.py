"""Retrying UNAVAILABLE with exponential backoff, for idempotent calls only.

UNAVAILABLE is what a call gets while the server cannot take it: a family's
replica is being replaced (a node was lost, a rollout), the proxy is
restarting, the connection dropped. Retrying is safe only when running the
call twice gives the caller the same thing, so the clients retry:

- always: `ListModels` and `Health` (reads);
- unary generations with a `seed` (`generate_text`, `generate_image`,
  `synthesize`): the same request and seed give the same output, so a retry
  at worst computes it twice;
- never: unseeded generations (a retry would return a different answer),
  streams (messages already delivered would repeat) and `Compose`.

A replica lost mid-call (its node went away) is retryable too: through
HAProxy (Maestro's default ingress) the call ends UNAVAILABLE, while Ray's
Python proxy answers INTERNAL with Ray's actor-death text ("The actor died
...") in the details; `RetryPolicy.replica_lost` treats that INTERNAL as
UNAVAILABLE. Maestro's own INTERNAL errors never carry that text.

A quota rejection (RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`) ran
nothing, so any unary call may wait that long and try again: with
`RetryPolicy(wait_for_quota=True)` the clients do, within the deadline.

One deadline covers all attempts: a call with `timeout=30` gives up after
30 s however many retries fit, so retrying never makes a call hang longer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc

from maestro.errors import retry_after_s

__all__ = [
    "NO_RETRY",
    "RetryPolicy",
    "acall_with_retry",
    "call_with_retry",
    "replica_lost",
    "seeded_policy",
]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried; `MaestroClient(retry=...)`."""

    attempts: int = 5  # tries in all, the first included
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 3.0
    multiplier: float = 2.0
    codes: frozenset[grpc.StatusCode] = field(
        default_factory=lambda: frozenset({grpc.StatusCode.UNAVAILABLE})
    )
    replica_lost: bool = True  # also Ray's INTERNAL for a replica that died
    # Wait out a quota (the server's grpc-retry-pushback-ms) and retry, for
    # every unary call: a call refused by a quota never ran.
    wait_for_quota: bool = False

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1 (got {self.attempts})")

    def backoff_s(self, retry: int) -> float:
        """Sleep before retry number `retry` (0-based): full jitter."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)
        return random.uniform(0, cap)

    def should_retry(self, error: grpc.RpcError, attempt: int) -> bool:
        if attempt + 1 >= self.attempts:
            return False
        code = error.code()  # type: ignore[attr-defined]
        return code in self.codes or (self.replica_lost and replica_lost(error))

    def pause_s(self, error: grpc.RpcError, attempt: int) -> float | None:
        """Seconds to wait before retrying `error`, or None: do not retry."""
        if attempt + 1 >= self.attempts:
            return None
        if self.wait_for_quota:
            pushback = quota_pushback_s(error)
            if pushback is not None:
                return pushback + random.uniform(0, self.initial_backoff_s)
        if self.should_retry(error, attempt):
            return self.backoff_s(attempt)
        return None

    def quota_only(self) -> RetryPolicy:
        """This policy for calls that may only wait out quotas (not idempotent)."""
        return replace(self, codes=frozenset(), replica_lost=False)


NO_RETRY = RetryPolicy(attempts=1)
# What Ray's ActorDiedError / ActorUnavailableError say (ray/exceptions.py and
# the GCS's death causes, e.g. "The actor died because its node has died.").
_REPLICA_LOST = (
    "The actor died",
    "The actor is dead",
    "may or may not have been executed on the actor",
)


def replica_lost(error: grpc.RpcError) -> bool:
    """An INTERNAL from Ray's proxy because the replica running the call died."""
    if error.code() != grpc.StatusCode.INTERNAL:  # type: ignore[attr-defined]
        return False
    details = error.details() or ""  # type: ignore[attr-defined]
    return any(marker in details for marker in _REPLICA_LOST)


def quota_pushback_s(error: grpc.RpcError) -> float | None:
    """The wait a quota rejection asks for; None for any other error."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
        return None
    return retry_after_s(error)


def seeded_policy(client: object, request: Any) -> RetryPolicy:
    """The client's policy for a generation with a `seed`; for one without,
    only quota waits (if the policy asks for them)."""
    policy: RetryPolicy = getattr(client, "retry", NO_RETRY)
    if request.HasField("seed"):
        return policy
    return policy.quota_only() if policy.wait_for_quota else NO_RETRY


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def call_with_retry(
    call: Callable[[float | None], T], policy: RetryPolicy, timeout: float | None
) -> T:
    """`call(timeout)`, retried per `policy` within one overall `timeout`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            return call(_remaining(deadline))
        except grpc.RpcError as error:
            pause = policy.pause_s(error, attempt)
            left = _remaining(deadline)
            if pause is None or (left is not None and left <= pause):
                raise
        time.sleep(pause)
        attempt += 1


async def acall_with_retry(
    call: Callable[[float | None], Awaitable[T]],
    policy: RetryPolicy,
    timeout: float | None,
) -> T:
    """The asyncio version of `call_with_retry`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            return await call(_remaining(deadline))
        except grpc.RpcError as error:
            pause = policy.pause_s(error, attempt)
            left = _remaining(deadline)
            if pause is None or (left is not None and left <= pause):
                raise
        await asyncio.sleep(pause)
        attempt += 1
