"""The scaffolding every family ingress that holds an engine shares.

A family deployment subclasses `EngineIngress`, sets `family`, `family_enum`
and `services`, and calls `_start_registry(config, make_engine)` from its
constructor: the family's models are registered (`deployments.registry`),
the default one loads off the request path, Health answers NOT_SERVING until
it is ready, a request takes its model with `async with self._model(id)`
(waiting, within its deadline, for a load), ListModels reports every
registered model the same way for every family, the admin RPCs LoadModel /
UnloadModel manage them, Ray restarts a replica whose engine failed or died,
and a stopping replica awaits its engines' shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, ClassVar

from grpc_health.v1 import health_pb2

from deployments.cache.responses import ResponseCache
from deployments.engines.base import Engine, ModelStatus
from deployments.errors import InvalidArgument, Unavailable
from deployments.health import health_response
from deployments.ingress import current_deadline, unary_rpc
from deployments.models_config import ModelsConfig, model_specs
from deployments.placement import replica_placement
from deployments.registry import ModelRegistry, ModelState
from deployments.routing import report_models
from maestro.v1 import models_pb2

__all__ = ["EngineIngress"]

logger = logging.getLogger("maestro.ingress")
# Answer this long before the client's deadline, so the answer arrives.
DEADLINE_MARGIN_S = 0.5
# A stream waiting for its model's load hears about it this often, once the
# wait has lasted the grace period.
LOAD_REPORT_S = 5.0
LOAD_REPORT_GRACE_S = 0.02
ADAPTER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class EngineIngress:
    """Model registry start, Ray health check, shutdown, Health and ListModels."""

    family: ClassVar[str]
    family_enum: ClassVar[int]  # models_pb2.FAMILY_*
    services: ClassVar[tuple[str, ...]]
    # Ray routes requests to a replica as soon as its constructor returns,
    # while the engine still loads: a replica added by autoscaling or
    # replacing a lost one would answer UNAVAILABLE to its first requests.
    # They wait this long for the engine instead (the caller's deadline may
    # end the wait sooner, with UNAVAILABLE).
    engine_wait_s: ClassVar[float] = 120.0
    registry: ModelRegistry
    cache: ResponseCache

    def _start_registry(
        self, config: ModelsConfig[Any], make_engine: Callable[[Any], Engine]
    ) -> None:
        """Register the config's models and preload the default off the
        request path (the constructor returns at once)."""
        self.registry = ModelRegistry(
            model_specs(config),
            make_engine,
            max_loaded_models=config.max_loaded_models,
            max_loaded_bytes=config.max_loaded_bytes,
        )
        self.registry.on_change.append(report_models)
        self.cache = ResponseCache(self.family, config.cache)
        self._starting = asyncio.create_task(self._preload())

    async def _preload(self) -> None:
        try:
            await self.registry.preload()
            logger.info("%s ready: %s", self.family, ", ".join(self.registry.ids))
        except Exception:
            logger.exception("%s default model failed to load", self.family)

    @property
    def engine(self) -> Engine | None:
        """The default model's engine (loaded, or last loaded; None before)."""
        return self.registry.current()

    def _wait_s(self) -> float:
        """How long a request may wait for a load: before its deadline."""
        wait = self.engine_wait_s
        deadline = current_deadline()
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic() - DEADLINE_MARGIN_S)
        return max(wait, 0.0)

    async def _engine_ready(self) -> None:
        """Wait (bounded) for the default model's first load.

        The wait ends before the client's deadline (when its client said it)
        with UNAVAILABLE, a code it can retry, rather than DEADLINE_EXCEEDED.
        """
        if self._starting.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._starting), self._wait_s())
        except TimeoutError:
            raise Unavailable(
                f"{self.family} engine is still loading; retry shortly"
            ) from None

    async def _loading(self, model_id: str) -> AsyncIterator[models_pb2.ModelLoad]:
        """For a stream: a `ModelLoad` report when the wait for `model_id`'s
        load begins and every `LOAD_REPORT_S` until it is loaded; nothing
        when it already is. Ends as `_model` would (UNAVAILABLE before the
        deadline, NOT_FOUND for an unknown id); a cancelled stream stops
        waiting, the load itself goes on for the next request."""
        wanted = model_id or self.registry.default_id
        self.registry.state(wanted)  # NOT_FOUND before any report
        if self._starting.done() and self.registry.is_loaded(wanted):
            return
        began = time.monotonic()
        deadline = began + self._wait_s()
        waiter = asyncio.ensure_future(self._loaded(wanted))
        try:
            # A wait this short is not worth a message (nor is it one).
            await asyncio.wait({waiter}, timeout=LOAD_REPORT_GRACE_S)
            while not waiter.done():
                state = self.registry.state(wanted)
                yield models_pb2.ModelLoad(
                    model=wanted,
                    state="loading" if state is ModelState.LOADING else "waiting",
                    waited_seconds=time.monotonic() - began,
                )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(f"model {wanted!r} is loading; retry shortly")
                await asyncio.wait({waiter}, timeout=min(LOAD_REPORT_S, left))
            waiter.result()
        finally:
            waiter.cancel()  # only this wait: the load is shielded

    async def _loaded(self, model_id: str) -> None:
        await self._engine_ready()
        await self.registry.ensure_loaded(model_id)

    @asynccontextmanager
    async def _model(self, model_id: str) -> AsyncIterator[Engine]:
        """The engine for a request's `model`, loaded if need be; it is not
        evicted while the block runs."""
        await self._engine_ready()
        async with self.registry.use(model_id, wait_s=self._wait_s()) as engine:
            yield engine

    async def __del__(self) -> None:
        # Ray Serve awaits this (it accepts `async def __del__`) when the
        # replica stops: take the engines, and the threads and processes they
        # started (vLLM's engine core, the pipeline worker), down with it.
        registry = getattr(self, "registry", None)
        if registry is None:
            return
        starting = getattr(self, "_starting", None)
        if starting is not None and not starting.done():
            starting.cancel()  # a load still running is abandoned, not awaited
        try:
            await registry.shutdown()
        except Exception:
            logger.exception("%s engines failed to shut down", self.family)
        cache = getattr(self, "cache", None)
        if cache is not None:
            await cache.close()

    def _healthy(self) -> tuple[bool, str]:
        if not self._starting.done():
            return False, "loading"
        return self.registry.healthy()

    def check_health(self) -> None:
        """Ray Serve's replica health check: restart a replica whose engine is down."""
        if self._starting.done():
            healthy, why = self.registry.healthy()
            if not healthy:
                raise RuntimeError(f"{self.family} engine down: {why}")

    @unary_rpc(health_pb2.HealthCheckResponse)
    async def Check(
        self, request: health_pb2.HealthCheckRequest, request_id: str
    ) -> health_pb2.HealthCheckResponse:
        ready, _ = self._healthy()
        return health_response(request, services=self.services, ready=ready)

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(
            models=[self._model_message(row) for row in self.registry.statuses()]
        )

    @unary_rpc(models_pb2.LoadModelResponse)
    async def LoadModel(
        self, request: models_pb2.LoadModelRequest, request_id: str
    ) -> models_pb2.LoadModelResponse:
        await self._engine_ready()
        await self.registry.load(request.model, pin=request.pin)
        return models_pb2.LoadModelResponse(model=self._row(request.model))

    @unary_rpc(models_pb2.UnloadModelResponse)
    async def UnloadModel(
        self, request: models_pb2.UnloadModelRequest, request_id: str
    ) -> models_pb2.UnloadModelResponse:
        await self._engine_ready()
        await self.registry.unload(request.model)
        return models_pb2.UnloadModelResponse(model=self._row(request.model))

    @unary_rpc(models_pb2.LoadAdapterResponse)
    async def LoadAdapter(
        self, request: models_pb2.LoadAdapterRequest, request_id: str
    ) -> models_pb2.LoadAdapterResponse:
        await self._engine_ready()
        seconds = await self.registry.load_adapter(
            request.model,
            _adapter_name(request.name),
            request.path,
            request.control_type,
        )
        return models_pb2.LoadAdapterResponse(
            model=self._row(request.model), load_seconds=seconds
        )

    @unary_rpc(models_pb2.UnloadAdapterResponse)
    async def UnloadAdapter(
        self, request: models_pb2.UnloadAdapterRequest, request_id: str
    ) -> models_pb2.UnloadAdapterResponse:
        await self._engine_ready()
        await self.registry.unload_adapter(request.model, request.name)
        return models_pb2.UnloadAdapterResponse(model=self._row(request.model))

    @unary_rpc(models_pb2.CacheStatsResponse)
    async def CacheStats(
        self, request: models_pb2.CacheStatsRequest, request_id: str
    ) -> models_pb2.CacheStatsResponse:
        stats = await self.cache.stats_message(self.family_enum)
        return models_pb2.CacheStatsResponse(stats=stats)

    @unary_rpc(models_pb2.ClearCacheResponse)
    async def ClearCache(
        self, request: models_pb2.ClearCacheRequest, request_id: str
    ) -> models_pb2.ClearCacheResponse:
        return await self.cache.clear_message()

    def _row(self, model_id: str) -> models_pb2.ModelInfo:
        wanted = model_id or self.registry.default_id
        (row,) = [r for r in self.registry.statuses() if r[0].id == wanted]
        return self._model_message(row)

    def _model_message(self, row: tuple[Any, ...]) -> models_pb2.ModelInfo:
        spec, state, registry_stats, info = row
        if info is None:  # never loaded here: what the config says
            info = ModelStatus(
                id=spec.id,
                engine="",
                device="",
                ready=False,
                status_message=registry_stats.get("error", state.value),
            )
        elif state is not ModelState.LOADED:
            info = replace(info, ready=False, status_message=state.value)
        stats = {
            **info.stats,
            **registry_stats,
            "default": str(spec.id == self.registry.default_id).lower(),
            **self._ingress_stats(),
            **replica_placement(),
        }
        return model_info_message(info, self.family_enum, stats)

    def _ingress_stats(self) -> dict[str, str]:
        """Counters the deployment keeps beside the engine's (none by default)."""
        return {}


def _adapter_name(name: str) -> str:
    if not ADAPTER_NAME.fullmatch(name):
        raise InvalidArgument(
            field="name", value=name, allowed="1-64 of A-Z a-z 0-9 . _ -"
        )
    return name


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
