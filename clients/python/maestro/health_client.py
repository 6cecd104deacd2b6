"""Health methods of the typed clients (`health`, `wait_until_serving`).

Mixed into `MaestroClient` / `AsyncMaestroClient`, which provide `channel`,
`retry` and `_deadline`. Every family's application answers
`grpc.health.v1.Health/Check`; the service "" asks about the whole application.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maestro.errors import MaestroRpcError, rpc_error
from maestro.retry import NO_RETRY, RetryPolicy, acall_with_retry, call_with_retry
from maestro.routing import FAMILIES

__all__ = ["AsyncHealthMethods", "HealthMethods"]

WAIT_S = 60.0
POLL_S = 0.5
_SERVING = "SERVING"


def _request(service: str) -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=service)


def _name(status: int) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


class _Waiting:
    """The families not SERVING yet, each with its last answer, and the clock."""

    def __init__(self, families: Iterable[str], timeout: float, every: float) -> None:
        names = (families,) if isinstance(families, str) else tuple(families)
        self.last = dict.fromkeys(names, "not asked")
        self.timeout, self.every = timeout, every
        self.deadline = time.monotonic() + timeout

    def pending(self) -> list[str]:
        return list(self.last)

    def probe_timeout(self, default: float | None) -> float:
        """A probe's deadline: the time left, but long enough to be answered."""
        left = max(self.deadline - time.monotonic(), self.every)
        return left if default is None else min(default, left)

    def record(self, family: str, answer: str) -> None:
        if answer == _SERVING:
            del self.last[family]
        else:
            self.last[family] = answer

    def pause(self) -> float:
        """Seconds to sleep before the next round; raises once time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            waiting = ", ".join(f"{f} ({answer})" for f, answer in self.last.items())
            raise TimeoutError(f"not SERVING after {self.timeout:g} s: {waiting}")
        return min(self.every, left)


class HealthMethods:
    """Blocking Health calls."""

    channel: grpc.Channel
    retry: RetryPolicy
    _health_stub: health_pb2_grpc.HealthStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _health(self) -> health_pb2_grpc.HealthStub:
        if self._health_stub is None:
            self._health_stub = health_pb2_grpc.HealthStub(self.channel)
        return self._health_stub

    def _check(
        self, family: str, service: str, policy: RetryPolicy, timeout: float | None
    ) -> int:
        try:
            reply = call_with_retry(
                lambda t: self._health().Check(
                    _request(service), timeout=t, metadata=self._metadata(family, t)
                ),
                policy,
                timeout,
            )
        except grpc.RpcError as error:
            raise rpc_error(error) from None
        return reply.status

    def health(self, family: str, service: str = "") -> int:
        """`HealthCheckResponse.ServingStatus` of one application."""
        return self._check(family, service, self.retry, self._deadline(None))

    def wait_until_serving(
        self,
        timeout: float = WAIT_S,
        families: Iterable[str] = FAMILIES,
        *,
        interval: float = POLL_S,
    ) -> None:
        """Return once every family's application answers SERVING.

        Applications that are unreachable, not deployed yet or NOT_SERVING are
        asked again every `interval` s; after `timeout` s a `TimeoutError`
        names each family still not serving and its last answer.
        """
        waiting = _Waiting(families, timeout, interval)
        while True:
            for family in waiting.pending():
                t = waiting.probe_timeout(self._deadline(None))
                try:
                    answer = _name(self._check(family, "", NO_RETRY, t))
                except MaestroRpcError as error:  # not reachable or routed yet
                    answer = str(error)
                waiting.record(family, answer)
            if not waiting.pending():
                return
            time.sleep(waiting.pause())


class AsyncHealthMethods:
    """asyncio Health calls."""

    channel: grpc.aio.Channel
    retry: RetryPolicy
    _health_stub: health_pb2_grpc.HealthStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _health(self) -> health_pb2_grpc.HealthStub:
        if self._health_stub is None:
            self._health_stub = health_pb2_grpc.HealthStub(self.channel)
        return self._health_stub

    async def _check(
        self, family: str, service: str, policy: RetryPolicy, timeout: float | None
    ) -> int:
        try:
            reply = await acall_with_retry(
                lambda t: self._health().Check(
                    _request(service), timeout=t, metadata=self._metadata(family, t)
                ),
                policy,
                timeout,
            )
        except grpc.RpcError as error:
            raise rpc_error(error) from None
        return reply.status

    async def health(self, family: str, service: str = "") -> int:
        """`HealthCheckResponse.ServingStatus` of one application."""
        return await self._check(family, service, self.retry, self._deadline(None))

    async def wait_until_serving(
        self,
        timeout: float = WAIT_S,
        families: Iterable[str] = FAMILIES,
        *,
        interval: float = POLL_S,
    ) -> None:
        """Return once every family's application answers SERVING.

        As `MaestroClient.wait_until_serving`, without blocking the loop.
        """
        waiting = _Waiting(families, timeout, interval)
        while True:
            for family in waiting.pending():
                t = waiting.probe_timeout(self._deadline(None))
                try:
                    answer = _name(await self._check(family, "", NO_RETRY, t))
                except MaestroRpcError as error:  # not reachable or routed yet
                    answer = str(error)
                waiting.record(family, answer)
            if not waiting.pending():
                return
            await asyncio.sleep(waiting.pause())
