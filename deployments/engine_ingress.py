"""The scaffolding every family ingress that holds an engine shares.

A family deployment subclasses `EngineIngress`, sets `family`, `family_enum`
and `services`, and calls `_start_in_background(engine)` from its
constructor: the engine loads off the request path, Health answers
NOT_SERVING until it is ready, requests that arrive meanwhile wait for it
(`await self._engine_ready()`), ListModels reports the engine's
`model_info()` the same way for every family, Ray restarts a replica whose
engine failed or died, and a stopping replica awaits its engine's shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

from grpc_health.v1 import health_pb2

from deployments.engines.base import Engine, ModelStatus
from deployments.errors import Unavailable
from deployments.health import health_response
from deployments.ingress import current_deadline, unary_rpc
from deployments.placement import replica_placement
from maestro.v1 import models_pb2

__all__ = ["EngineIngress"]

logger = logging.getLogger("maestro.ingress")
# Answer this long before the client's deadline, so the answer arrives.
DEADLINE_MARGIN_S = 0.5


class EngineIngress:
    """Background engine start, Ray health check, shutdown and Health/Check."""

    family: ClassVar[str]
    family_enum: ClassVar[int]  # models_pb2.FAMILY_*
    services: ClassVar[tuple[str, ...]]
    # Ray routes requests to a replica as soon as its constructor returns,
    # while the engine still loads: a replica added by autoscaling or
    # replacing a lost one would answer UNAVAILABLE to its first requests.
    # They wait this long for the engine instead (the caller's deadline may
    # end the wait sooner); then the engine's own UNAVAILABLE stands.
    engine_wait_s: ClassVar[float] = 120.0
    engine: Engine

    def _start_in_background(self, engine: Engine) -> None:
        self.engine = engine
        self._starting = asyncio.create_task(self._start_engine())

    async def _start_engine(self) -> None:
        try:
            await self.engine.start()
            logger.info("%s engine ready: %s", self.family, self.engine.served_id)
        except Exception:
            logger.exception("%s engine failed to start", self.family)

    async def _engine_ready(self) -> None:
        """Wait (bounded) for a loading engine; no-op once it started or failed.

        The wait ends before the client's deadline (when its client said it)
        with UNAVAILABLE, a code it can retry, rather than DEADLINE_EXCEEDED.
        """
        if self._starting.done():
            return
        wait = self.engine_wait_s
        deadline = current_deadline()
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic() - DEADLINE_MARGIN_S)
        try:
            await asyncio.wait_for(asyncio.shield(self._starting), max(wait, 0))
        except TimeoutError:
            raise Unavailable(
                f"{self.family} engine is still loading; retry shortly"
            ) from None

    async def __del__(self) -> None:
        # Ray Serve awaits this (it accepts `async def __del__`) when the
        # replica stops: take the engine, and the threads and processes it
        # started (vLLM's engine core, the pipeline worker), down with it.
        engine = getattr(self, "engine", None)
        if engine is None:
            return
        starting = getattr(self, "_starting", None)
        if starting is not None and not starting.done():
            starting.cancel()  # a load still running is abandoned, not awaited
        try:
            await engine.shutdown()
        except Exception:
            logger.exception("%s engine failed to shut down", self.family)

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

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        info = self.engine.model_info()
        stats = {**info.stats, **self._ingress_stats(), **replica_placement()}
        return models_pb2.ListModelsResponse(
            models=[model_info_message(info, self.family_enum, stats)]
        )

    def _ingress_stats(self) -> dict[str, str]:
        """Counters the deployment keeps beside the engine's (none by default)."""
        return {}


def model_info_message(
    info: ModelStatus, family: int, stats: dict[str, str]
) -> models_pb2.ModelInfo:
    """An engine's `ModelStatus` as the wire's `ModelInfo`."""
    return models_pb2.ModelInfo(
        id=info.id,
        family=family,  # type: ignore[arg-type]
        engine=info.engine,
        device=info.device,
        ready=info.ready,
        status_message=info.status_message,
        limits=info.limits,
        stats=stats,
    )
