"""The model registry on real engines: the demo VITS voice, registered twice.

Two ids for the same demo checkpoint are two real, separately loaded
engines (each load reads the weights and starts its own batcher thread), so
loads, evictions and drains here are the real ones, only cheap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deployments.engines.memory import checkpoint_bytes
from deployments.engines.voice.config import VoiceEngineConfig
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.types import SpeechRequest
from deployments.errors import NotFound, ResourceExhausted, Unavailable
from deployments.registry import ModelRegistry, ModelSpec, ModelState

pytestmark = pytest.mark.slow


class CountingFactory:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, config: VoiceEngineConfig) -> VoiceEngine:
        self.loads.append(config.served_id)
        return VoiceEngine(config)


def _registry(
    demo_models: Path,
    *ids: str,
    max_loaded: int | None = None,
    max_bytes: int | None = None,
) -> tuple[ModelRegistry, CountingFactory]:
    factory = CountingFactory()
    specs = [
        ModelSpec(VoiceEngineConfig(model=str(demo_models / "voice"), model_id=i))
        for i in ids
    ]
    registry = ModelRegistry(
        specs, factory, max_loaded_models=max_loaded, max_loaded_bytes=max_bytes
    )
    return registry, factory


def _states(registry: ModelRegistry) -> dict[str, str]:
    return {spec.id: state.value for spec, state, _, _ in registry.statuses()}


async def _speak(registry: ModelRegistry, model: str, text: str = "hi.") -> str:
    async with registry.use(model) as engine:
        await engine.synthesize(SpeechRequest(text=text))
        return engine.served_id


async def test_models_load_lazily_once_for_concurrent_first_requests(
    demo_models: Path,
) -> None:
    registry, factory = _registry(demo_models, "a", "b")
    await registry.preload()  # the default only
    assert _states(registry) == {"a": "loaded", "b": "available"}
    served = await asyncio.gather(*(_speak(registry, "b") for _ in range(6)))
    assert served == ["b"] * 6 and factory.loads == ["a", "b"]
    assert _states(registry) == {"a": "loaded", "b": "loaded"}
    assert await _speak(registry, "") == "a"  # empty: the default
    with pytest.raises(NotFound, match="available: a, b"):
        await _speak(registry, "c")
    await registry.shutdown()


async def test_budget_of_one_switches_on_demand_and_never_mixes_models(
    demo_models: Path,
) -> None:
    registry, factory = _registry(demo_models, "a", "b", max_loaded=1)
    await registry.preload()
    wanted = ["a", "b"] * 5
    served = await asyncio.gather(*(_speak(registry, m) for m in wanted))
    assert served == wanted  # every request ran on the model it named
    loaded = [s for s, state in _states(registry).items() if state == "loaded"]
    assert len(loaded) == 1
    assert len(factory.loads) >= 2  # it switched
    await registry.shutdown()


async def test_the_least_recently_used_idle_model_is_evicted(
    demo_models: Path,
) -> None:
    registry, _ = _registry(demo_models, "a", "b", "c", max_loaded=2)
    await registry.preload()
    await _speak(registry, "b")
    await _speak(registry, "a")  # a is now the most recent
    await _speak(registry, "c")  # evicts b, the least recently used
    assert _states(registry) == {"a": "loaded", "b": "available", "c": "loaded"}
    await registry.shutdown()


async def test_a_model_in_use_drains_before_it_is_evicted_or_unloaded(
    demo_models: Path,
) -> None:
    registry, _ = _registry(demo_models, "a", "b", max_loaded=1)
    await registry.preload()
    long_text = " ".join(f"Sentence {i} of a long one." for i in range(40))
    started = asyncio.Event()

    async def long_call() -> str:
        async with registry.use("a") as engine:
            started.set()
            await engine.synthesize(SpeechRequest(text=long_text))
            assert registry.statuses()[0][1] is ModelState.LOADED  # not evicted
            return "a done"

    first = asyncio.create_task(long_call())
    await started.wait()
    # b needs a's place: it waits for a to drain, then a is unloaded.
    results = await asyncio.gather(first, _speak(registry, "b"))
    assert results == ["a done", "b"]
    assert _states(registry) == {"a": "available", "b": "loaded"}
    # UnloadModel while in flight: the call finishes, then the model goes.
    inflight = asyncio.create_task(_speak(registry, "b", long_text))
    await asyncio.sleep(0.05)
    await registry.unload("b")
    assert await inflight == "b"
    assert _states(registry)["b"] == "available"
    await registry.shutdown()


async def test_pinned_models_are_not_evicted(demo_models: Path) -> None:
    registry, _ = _registry(demo_models, "a", "b", max_loaded=1)
    await registry.preload()
    await registry.load("a", pin=True)
    with pytest.raises(ResourceExhausted, match="pinned"):
        await _speak(registry, "b")
    await registry.unload("a")  # unpins and unloads
    assert await _speak(registry, "b") == "b"
    await registry.shutdown()


async def test_a_loaded_model_needs_no_wait(demo_models: Path) -> None:
    # A call whose deadline leaves no time to wait (wait_s 0) is still served
    # by a loaded model; only a load it would have to wait for is refused.
    registry, _ = _registry(demo_models, "a", "b")
    await registry.preload()
    async with registry.use("a", wait_s=0) as engine:
        assert engine.served_id == "a"
    with pytest.raises(Unavailable, match="'b' is loading"):
        async with registry.use("b", wait_s=0):
            pass
    await registry.shutdown()


async def test_a_memory_budget_evicts_what_does_not_fit(demo_models: Path) -> None:
    weights = checkpoint_bytes(str(demo_models / "voice"))
    # Room for one demo voice (what its engine holds is its weights), not two.
    registry, factory = _registry(demo_models, "a", "b", max_bytes=weights * 3 // 2)
    await registry.preload()
    (held,) = [
        int(st["memory_bytes"])
        for _, _, st, _ in registry.statuses()
        if "memory_bytes" in st
    ]
    assert 0.9 * weights < held < 1.1 * weights  # parameters ~ the file's size
    assert await _speak(registry, "b") == "b"
    assert _states(registry) == {"a": "available", "b": "loaded"}
    assert await _speak(registry, "a") == "a"  # and back: a switch each time
    assert factory.loads == ["a", "b", "a"]
    await registry.shutdown()


class SleepyVoice(VoiceEngine):
    """Stands in for vLLM's sleep mode, which needs a GPU (vLLM refuses it on
    CPU): sleeping keeps the model (nothing to free here) and records the
    calls. What is tested is the registry's side: an evicted engine that can
    sleep is put to sleep, not stopped, and woken, not rebuilt."""

    def __init__(self, config: VoiceEngineConfig) -> None:
        super().__init__(config)
        self.calls: list[str] = []

    @property
    def can_sleep(self) -> bool:
        return True

    async def sleep(self) -> None:
        self.calls.append("sleep")

    async def wake(self) -> None:
        self.calls.append("wake")


async def test_an_engine_that_can_sleep_sleeps_when_evicted_and_wakes(
    demo_models: Path,
) -> None:
    engines: dict[str, SleepyVoice] = {}

    def make(config: VoiceEngineConfig) -> SleepyVoice:
        engines[config.served_id] = SleepyVoice(config)
        return engines[config.served_id]

    specs = [
        ModelSpec(VoiceEngineConfig(model=str(demo_models / "voice"), model_id=i))
        for i in ("a", "b")
    ]
    registry = ModelRegistry(specs, make, max_loaded_models=1)
    await registry.preload()
    assert await _speak(registry, "b") == "b"
    assert _states(registry) == {"a": "sleeping", "b": "loaded"}
    assert await _speak(registry, "a") == "a"  # woken, not rebuilt
    assert _states(registry) == {"a": "loaded", "b": "sleeping"}
    assert list(engines) == ["a", "b"]  # two engines made, no third
    assert engines["a"].calls == ["sleep", "wake"] and engines["b"].calls == ["sleep"]
    (a_stats,) = [st for spec, _, st, _ in registry.statuses() if spec.id == "a"]
    assert a_stats["loaded_by"] == "wake"
    await registry.unload("b")  # an admin unload stops a sleeping engine
    assert _states(registry)["b"] == "available" and not engines["b"].ready
    await registry.shutdown()
