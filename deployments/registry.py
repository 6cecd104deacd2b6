"""A family's models as a managed resource: registered, loaded on demand, evicted.

Every family replica holds one `ModelRegistry`. It knows every model the
config registers (the default `engine:` and the `models:` list), loads a
model on its first request (one load, however many requests arrive at once),
keeps at most `max_loaded_models` loaded and evicts the least recently used
*idle* one to make room: a model with requests in flight is never evicted, it
drains first. Admin calls load, pin and unload models by id.

It speaks only to the engine interface (`deployments.engines.base.Engine`),
so it is the same for vLLM, diffusers and VITS.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from deployments.cache.keys import fingerprint
from deployments.engines.adapters import adapter_path
from deployments.engines.base import Engine, ModelStatus
from deployments.engines.memory import checkpoint_bytes
from deployments.errors import MaestroError, NotFound, ResourceExhausted, Unavailable

__all__ = ["ModelRegistry", "ModelSpec", "ModelState"]

logger = logging.getLogger("maestro.registry")


class ModelState(enum.Enum):
    AVAILABLE = "available"  # registered, not loaded
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    SLEEPING = "sleeping"  # evicted, device memory freed, wakes fast (vLLM)
    FAILED = "failed"


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: its engine config and whether it loads at start."""

    config: Any  # the family's EngineConfig
    preload: bool = False

    @property
    def id(self) -> str:
        return str(self.config.served_id)


@dataclass(eq=False)
class _Slot:
    spec: ModelSpec
    state: ModelState = ModelState.AVAILABLE
    engine: Engine | None = None
    error: str = ""
    load_seconds: float | None = None
    loaded_by: str = ""  # "start" (a new engine) or "wake" (from sleep)
    memory_bytes: int | None = None  # measured after its last load
    last_used: float = 0.0
    inflight: int = 0
    pinned: bool = False
    loading: asyncio.Task[None] | None = None
    last_engine: Engine | None = None  # kept for status after an unload
    # Adapters loaded at run time (name -> path, control type or ""): loaded
    # again with the model.
    adapters: dict[str, tuple[str, str]] = field(default_factory=dict)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Loads and unloads of one model never overlap (two copies in memory).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def status(self) -> ModelStatus | None:
        return None if self.engine is None else self.engine.model_info()


class ModelRegistry:
    """The models one replica of a family may serve (see module docstring)."""

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        make_engine: Callable[[Any], Engine],
        *,
        max_loaded_models: int | None = None,
        max_loaded_bytes: int | None = None,
    ) -> None:
        if not specs:
            raise ValueError("a registry needs at least one model")
        ids = [spec.id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique, got {ids}")
        self._slots = {spec.id: _Slot(spec) for spec in specs}
        self.default_id = ids[0]
        self._make = make_engine
        self.max_loaded = max_loaded_models
        self.max_bytes = max_loaded_bytes
        self._room = asyncio.Condition()  # a slot became idle or unloaded
        # Called with the ids of the models loaded or loading, on every change.
        self.on_change: list[Callable[[list[str]], None]] = []
        for slot in self._slots.values():
            slot.idle.set()

    @property
    def ids(self) -> list[str]:
        return list(self._slots)

    def engine(self, model_id: str = "") -> Engine | None:
        """The loaded engine of a model (the default when empty), or None."""
        return self._slot(model_id).engine

    def current(self, model_id: str = "") -> Engine | None:
        """The model's engine, loaded or last loaded (for limits and status)."""
        slot = self._slot(model_id)
        return slot.engine or slot.last_engine

    def healthy(self) -> tuple[bool, str]:
        """False (and why) when the default failed or a loaded engine died."""
        default = self._slots[self.default_id]
        if default.state is ModelState.FAILED:
            return False, f"model {self.default_id} failed to load: {default.error}"
        for slot in self._slots.values():
            if slot.state is ModelState.LOADED and slot.engine is not None:
                if not slot.engine.ready:
                    return False, f"{slot.spec.id}: {slot.engine.status_message}"
        return True, ""

    def state(self, model_id: str = "") -> ModelState:
        """A model's state (NOT_FOUND for an id that is not registered)."""
        return self._slot(model_id).state

    def is_loaded(self, model_id: str = "") -> bool:
        slot = self._slot(model_id)
        return slot.state is ModelState.LOADED and slot.engine is not None

    async def ensure_loaded(self, model_id: str = "") -> None:
        """Load a model if it is not (the one load every waiter shares)."""
        await self._ensure_loaded(self._slot(model_id))

    async def preload(self) -> None:
        """Load the models marked `preload` (the default model always is)."""
        for slot in self._slots.values():
            if slot.spec.preload or slot.spec.id == self.default_id:
                await self._ensure_loaded(slot)

    @asynccontextmanager
    async def use(
        self, model_id: str, *, wait_s: float | None = None
    ) -> AsyncIterator[Engine]:
        """The engine for a request's `model` ("" is the default), loaded if
        need be (waiting at most `wait_s`, then UNAVAILABLE); it stays loaded
        (never evicted) until the block ends."""
        slot = self._slot(model_id)
        while True:
            if self.is_loaded(slot.spec.id):
                break  # no wait at all (a zero wait_s would time out at once)
            try:
                await asyncio.wait_for(self._ensure_loaded(slot), wait_s)
            except TimeoutError:
                raise Unavailable(
                    f"model {slot.spec.id!r} is loading; retry shortly"
                ) from None
            if self.is_loaded(slot.spec.id):
                break
        slot.inflight += 1
        slot.idle.clear()
        slot.last_used = time.monotonic()
        try:
            yield slot.engine
        finally:
            slot.inflight -= 1
            slot.last_used = time.monotonic()
            if slot.inflight == 0:
                slot.idle.set()
                async with self._room:
                    self._room.notify_all()

    async def load(self, model_id: str, *, pin: bool = False) -> ModelStatus:
        slot = self._slot(model_id)
        slot.pinned = slot.pinned or pin
        await self._ensure_loaded(slot)
        status = slot.status()
        assert status is not None
        return status

    async def unload(self, model_id: str) -> None:
        """Unload a model once its requests drained (and unpin it)."""
        slot = self._slot(model_id)
        slot.pinned = False
        if slot.loading is not None:
            await asyncio.shield(slot.loading)
        await self._unload(slot)

    async def load_adapter(
        self, model_id: str, name: str, path: str, control_type: str = ""
    ) -> float:
        """Load an adapter into a model (loading the model if need be) and
        keep it across unloads; returns the adapter's load seconds."""
        slot = self._slot(model_id)
        real = adapter_path(path, slot.spec.config.adapter_dirs)
        await self._ensure_loaded(slot)
        async with slot.lock:  # not while the model unloads
            engine = slot.engine
            if engine is None:
                raise Unavailable(f"model {slot.spec.id!r} was unloaded; retry")
            began = time.monotonic()
            await _load_adapter(engine, name, real, control_type)
            slot.adapters[name] = (real, control_type)
        logger.info("adapter %s of %s loaded from %s", name, slot.spec.id, real)
        return time.monotonic() - began

    async def unload_adapter(self, model_id: str, name: str) -> None:
        """Remove a run-time adapter (requests using it finish first)."""
        slot = self._slot(model_id)
        async with slot.lock:
            if slot.engine is not None and name in slot.engine.adapters:
                await slot.engine.unload_adapter(name)
                slot.engine.adapter_prints.pop(name, None)
            elif name not in slot.adapters:
                available = slot.engine.adapters if slot.engine else slot.adapters
                raise NotFound(what="adapter", name=name, available=list(available))
            slot.adapters.pop(name, None)

    def statuses(self) -> list[tuple[ModelSpec, ModelState, dict[str, str], Any]]:
        """Every registered model: spec, state, registry stats, engine status."""
        rows = []
        for slot in self._slots.values():
            stats = {
                "state": slot.state.value,
                "requests_in_flight": str(slot.inflight),
                "pinned": str(slot.pinned).lower(),
            }
            if slot.load_seconds is not None:
                stats["load_seconds"] = f"{slot.load_seconds:.3f}"
                stats["loaded_by"] = slot.loaded_by
            if slot.memory_bytes is not None:
                stats["memory_bytes"] = str(slot.memory_bytes)
            if slot.last_used:
                stats["idle_seconds"] = f"{time.monotonic() - slot.last_used:.1f}"
            if slot.error:
                stats["error"] = slot.error
            if slot.engine is not None and (identity := slot.engine.identity()):
                stats["identity"] = identity  # keys the studio's Compose cache
            rows.append((slot.spec, slot.state, stats, slot.status()))
        return rows

    async def shutdown(self) -> None:
        for slot in self._slots.values():
            if slot.loading is not None:
                slot.loading.cancel()
            if slot.engine is not None:
                await slot.engine.shutdown()
                slot.engine, slot.state = None, ModelState.AVAILABLE

    # Internals -------------------------------------------------------------

    def _slot(self, model_id: str) -> _Slot:
        slot = self._slots.get(model_id or self.default_id)
        if slot is None:
            raise NotFound(what="model", name=model_id, available=self.ids)
        return slot

    async def _ensure_loaded(self, slot: _Slot) -> None:
        if slot.state is ModelState.LOADED:
            return
        if slot.loading is None:  # the first request starts the one load
            slot.loading = asyncio.create_task(self._load(slot))
        try:
            await asyncio.shield(slot.loading)
        except MaestroError:
            raise  # no room under the budget: RESOURCE_EXHAUSTED as it is
        except Exception:
            raise Unavailable(
                f"model {slot.spec.id!r} failed to load: {slot.error}"
            ) from None

    async def _load(self, slot: _Slot) -> None:
        async with slot.lock:  # an unload in progress finishes first
            if slot.state is ModelState.LOADED:
                slot.loading = None
                return
            await self._load_locked(slot)

    def _changed(self) -> None:
        held = [
            s.spec.id for s in self._loaded() if s.state is not ModelState.UNLOADING
        ]
        for hook in self.on_change:
            hook(held)

    async def _load_locked(self, slot: _Slot) -> None:
        try:
            await self._make_room(slot)  # no room: the caller hears why
        except BaseException:
            slot.loading = None
            raise
        if slot.state is ModelState.SLEEPING and slot.engine is not None:
            await self._wake(slot)
            return
        try:
            slot.state, slot.error = ModelState.LOADING, ""
            self._changed()
            began = time.monotonic()
            engine = self._make(slot.spec.config)
            await engine.start()
            for name, (path, control_type) in slot.adapters.items():  # run time
                await _load_adapter(engine, name, path, control_type)
            slot.loaded_by = "start"
            slot.engine, slot.state = engine, ModelState.LOADED
            slot.last_engine = engine
            slot.load_seconds = time.monotonic() - began
            slot.memory_bytes = engine.memory_bytes()
            slot.last_used = time.monotonic()
            logger.info("model %s loaded in %.2f s", slot.spec.id, slot.load_seconds)
        except Exception as exc:
            slot.state = ModelState.FAILED
            slot.error = f"{type(exc).__name__}: {exc}"
            logger.exception("model %s failed to load", slot.spec.id)
            raise
        finally:
            slot.loading = None
            self._changed()

    async def _wake(self, slot: _Slot) -> None:
        assert slot.engine is not None
        slot.state = ModelState.LOADING
        self._changed()
        began = time.monotonic()
        try:
            await slot.engine.wake()
        except Exception as exc:
            slot.state = ModelState.FAILED
            slot.error = f"wake failed: {type(exc).__name__}: {exc}"
            logger.exception("model %s failed to wake", slot.spec.id)
            raise
        finally:
            slot.loading = None
        slot.state, slot.loaded_by = ModelState.LOADED, "wake"
        slot.load_seconds = time.monotonic() - began
        slot.last_used = time.monotonic()
        self._changed()
        logger.info("model %s woke in %.2f s", slot.spec.id, slot.load_seconds)

    async def _evict(self, slot: _Slot) -> None:
        """Make room: an engine that can sleep sleeps, any other unloads."""
        engine = slot.engine
        if engine is None or not engine.can_sleep:
            await self._unload(slot)
            return
        async with slot.lock:
            slot.state = ModelState.UNLOADING
            self._changed()
            await slot.idle.wait()  # requests in flight finish first
            await engine.sleep()
            slot.state = ModelState.SLEEPING
            logger.info("model %s sleeps", slot.spec.id)

    def _loaded(self) -> list[_Slot]:
        return [
            s
            for s in self._slots.values()
            if s.state in (ModelState.LOADED, ModelState.LOADING, ModelState.UNLOADING)
        ]

    def _bytes(self, slot: _Slot) -> int:
        """A model's memory: measured at its last load, else its checkpoint."""
        if slot.memory_bytes is not None:
            return slot.memory_bytes
        return checkpoint_bytes(str(getattr(slot.spec.config, "model", "")))

    def _over_budget(self, slot: _Slot) -> bool:
        others = [s for s in self._loaded() if s is not slot]
        if self.max_loaded is not None and len(others) >= self.max_loaded:
            return True
        if self.max_bytes is not None and others:
            held = sum(self._bytes(s) for s in others)
            return held + self._bytes(slot) > self.max_bytes
        return False

    async def _make_room(self, slot: _Slot) -> None:
        """Evict least recently used idle models until `slot` fits the budgets
        (a count, and bytes: a model alone always fits)."""
        if self.max_loaded is None and self.max_bytes is None:
            return
        async with self._room:
            while self._over_budget(slot):
                victims = sorted(
                    (
                        s
                        for s in self._loaded()
                        if s is not slot
                        and s.state is ModelState.LOADED
                        and s.inflight == 0
                        and not s.pinned
                    ),
                    key=lambda s: s.last_used,
                )
                if victims:
                    await self._evict(victims[0])
                    continue
                if all(s.pinned for s in self._loaded() if s is not slot):
                    raise ResourceExhausted(
                        f"the loaded models are pinned and fill the budget "
                        f"(max_loaded_models={self.max_loaded}, max_loaded_bytes="
                        f"{self.max_bytes}); unload one to load {slot.spec.id!r}"
                    )
                await self._room.wait()  # a busy model drains, then we evict

    async def _unload(self, slot: _Slot) -> None:
        async with slot.lock:
            await self._unload_locked(slot)

    async def _unload_locked(self, slot: _Slot) -> None:
        if slot.engine is None:
            if slot.state is not ModelState.FAILED:
                slot.state = ModelState.AVAILABLE
            return
        slot.state = ModelState.UNLOADING
        self._changed()  # route no more calls for it here
        await slot.idle.wait()  # requests in flight finish first
        engine, slot.engine = slot.engine, None
        try:
            await engine.shutdown()
        finally:
            slot.state = ModelState.AVAILABLE
            logger.info("model %s unloaded", slot.spec.id)


async def _load_adapter(
    engine: Engine, name: str, path: str, control_type: str
) -> None:
    """Load a run-time adapter, noting its files for the response cache."""
    await engine.load_adapter(name, path, control_type)
    engine.adapter_prints[name] = await asyncio.to_thread(fingerprint, path)
