"""The scaffolding every family ingress that holds an engine shares.

A family deployment subclasses `EngineIngress`, sets `family` and `services`,
and calls `_start_in_background(engine)` from its constructor: the engine
loads off the request path, Health answers NOT_SERVING until it is ready,
requests that arrive meanwhile wait for it (`await self._engine_ready()`),
Ray restarts a replica whose engine failed or died, and a stopping replica
shuts its engine down.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, ClassVar

from grpc_health.v1 import health_pb2

from deployments.health import health_response
from deployments.ingress import unary_rpc

__all__ = ["EngineIngress"]

logger = logging.getLogger("maestro.ingress")


class EngineIngress:
    """Background engine start, Ray health check, shutdown and Health/Check."""

    family: ClassVar[str]
    services: ClassVar[tuple[str, ...]]
    # Ray routes requests to a replica as soon as its constructor returns,
    # while the engine still loads: a replica added by autoscaling or
    # replacing a lost one would answer UNAVAILABLE to its first requests.
    # They wait this long for the engine instead (the caller's deadline may
    # end the wait sooner); then the engine's own UNAVAILABLE stands.
    engine_wait_s: ClassVar[float] = 120.0
    engine: Any

    def _start_in_background(self, engine: Any) -> None:
        self.engine = engine
        self._starting = asyncio.create_task(self._start_engine())

    async def _start_engine(self) -> None:
        try:
            await self.engine.start()
            logger.info(
                "%s engine ready: %s", self.family, self.engine.config.served_id
            )
        except Exception:
            logger.exception("%s engine failed to start", self.family)

    async def _engine_ready(self) -> None:
        """Wait (bounded) for a loading engine; no-op once it started or failed."""
        if self._starting.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._starting), self.engine_wait_s)
        except TimeoutError:
            pass  # the engine call below answers UNAVAILABLE (still loading)

    def __del__(self) -> None:
        # Ray Serve calls this when the replica stops: take the engine (and
        # processes it started, such as vLLM's engine core) down with it.
        engine = getattr(self, "engine", None)
        if engine is not None and not inspect.iscoroutinefunction(engine.shutdown):
            engine.shutdown()

    def check_health(self) -> None:
        """Ray Serve's replica health check: restart a replica whose engine is down."""
        if self._starting.done() and not self.engine.ready:
            raise RuntimeError(
                f"{self.family} engine down: {self.engine.status_message}"
            )

    @unary_rpc(health_pb2.HealthCheckResponse)
    async def Check(
        self, request: health_pb2.HealthCheckRequest, request_id: str
    ) -> health_pb2.HealthCheckResponse:
        return health_response(request, services=self.services, ready=self.engine.ready)
