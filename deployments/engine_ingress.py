"""The scaffolding every family ingress that holds an engine shares.

A family deployment subclasses `EngineIngress`, sets `family` and `services`,
and calls `_start_in_background(engine)` from its constructor: the engine
loads off the request path, Health answers NOT_SERVING until it is ready,
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
