"""Models as a managed resource, on the demo engines (no Ray): switching,
lazy loading, memory, and LoRA adapters loaded at run time.

    python -m bench.registry_bench [--repeats 5] [--only text,image,voice]

Each family's two demo models, as serve_config.yaml registers them (text:
Llama + Qwen2 on vLLM; image: SD UNet + SD3 DiT; voice: two VITS). Reported,
as medians of `--repeats` alternating runs:

- a lazy first request for the second model (its load included) against
  its next, warm, request;
- the switch: a request for the other model at `max_loaded_models` 1
  (unload + load + the request) against the same request warm;
- a stream of requests alternating between the two models at budgets 1 and
  2, as requests per second, and the ratio;
- the memory each model holds (ListModels `memory_bytes`);
- adapters (text: vLLM runtime LoRA on Qwen2; image: diffusers LoRA on the
  UNet model): the time to load one at run time, and its activation, the
  extra latency of the first request using it and of later ones, against
  the 50 ms seed target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from deployments import PROJECT_ROOT
from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.types import ImageRequest, LoraChoice
from deployments.engines.text.config import TextEngineConfig
from deployments.engines.text.engine import TextEngine
from deployments.engines.text.types import TextRequest
from deployments.engines.voice.config import VoiceEngineConfig
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.types import SpeechRequest
from deployments.registry import ModelRegistry, ModelSpec

DEMO = PROJECT_ROOT / "models" / "demo"
ALTERNATING = 4  # requests per alternating run (text: each switch is a vLLM start)
ACTIVATION_TARGET_S = 0.050
TEXT_ARGS = {"dtype": "float32", "max_model_len": 512, "kv_cache_space_gib": 1}
LORAS = {"adapter_dirs": (str(DEMO),)}


async def _text(engine: Any, adapter: str = "") -> None:
    await engine.generate(
        TextRequest(
            prompt="the quick fox", max_tokens=8, temperature=0.0, adapter=adapter
        )
    )


async def _image(engine: Any, adapter: str = "") -> None:
    loras = (LoraChoice(adapter, 0.8),) if adapter else ()
    request = ImageRequest(prompt="x", width=64, height=64, steps=1, loras=loras)
    await engine.generate(request)


async def _voice(engine: Any, adapter: str = "") -> None:
    await engine.synthesize(SpeechRequest(text="Hello there."))


Family = tuple[Callable[[str], Any], Callable[[str], Any], Any, Any]
FAMILIES: dict[str, Family] = {
    "text": (
        lambda i: TextEngineConfig(model=str(DEMO / "text"), model_id=i, **TEXT_ARGS),
        lambda i: TextEngineConfig(
            model=str(DEMO / "text-qwen2"),
            model_id=i,
            max_loras=2,
            **TEXT_ARGS,
            **LORAS,
        ),
        TextEngine,
        _text,
    ),
    "image": (
        lambda i: ImageEngineConfig(model=str(DEMO / "image"), model_id=i, **LORAS),
        lambda i: ImageEngineConfig(model=str(DEMO / "image-sd3"), model_id=i),
        ImageEngine,
        _image,
    ),
    "voice": (
        lambda i: VoiceEngineConfig(model=str(DEMO / "voice"), model_id=i),
        lambda i: VoiceEngineConfig(model=str(DEMO / "voice-solo"), model_id=i),
        VoiceEngine,
        _voice,
    ),
}
# family -> (the model of the pair that takes adapters: "a" or "b", the path)
ADAPTERS = {
    "text": ("b", DEMO / "text-qwen2" / "loras" / "demo-lora"),
    "image": ("a", DEMO / "image" / "loras" / "demo-style"),
}


async def _timed(registry: ModelRegistry, model: str, call: Any, *args: Any) -> float:
    began = time.perf_counter()
    async with registry.use(model) as engine:
        await call(engine, *args)
    return time.perf_counter() - began


def _specs(family: str) -> list[ModelSpec]:
    first, second, _, _ = FAMILIES[family]
    return [ModelSpec(first("a")), ModelSpec(second("b"))]


async def _lazy_and_memory(family: str, out: dict[str, float]) -> None:
    _, _, make, call = FAMILIES[family]
    registry = ModelRegistry(_specs(family), make)
    await registry.preload()
    await _timed(registry, "a", call)  # warm-up of the process
    out["lazy_first_s"] = await _timed(registry, "b", call)  # includes the load
    out["warm_s"] = await _timed(registry, "b", call)  # the same, loaded
    for spec, _, stats, _ in registry.statuses():
        out[f"memory_mb_{spec.id}"] = int(stats.get("memory_bytes", 0)) / 1e6
    if family in ADAPTERS:
        await _adapter(registry, family, out)
    await registry.shutdown()


async def _adapter(registry: ModelRegistry, family: str, out: dict[str, float]) -> None:
    model, path = ADAPTERS[family]
    _, _, _, call = FAMILIES[family]
    await _timed(registry, model, call)
    base = [await _timed(registry, model, call) for _ in range(3)]
    out["adapter_load_s"] = await registry.load_adapter(model, "bench", str(path))
    first = await _timed(registry, model, call, "bench")
    later = [await _timed(registry, model, call, "bench") for _ in range(3)]
    out["adapter_first_extra_s"] = first - statistics.median(base)
    out["adapter_later_extra_s"] = statistics.median(later) - statistics.median(base)
    await registry.unload_adapter(model, "bench")


async def _alternating(family: str, budget: int, out: dict[str, float]) -> None:
    _, _, make, call = FAMILIES[family]
    registry = ModelRegistry(_specs(family), make, max_loaded_models=budget)
    await registry.preload()
    await _timed(registry, "b", call)
    switches, began = [], time.perf_counter()
    for i in range(ALTERNATING):
        switches.append(await _timed(registry, "ab"[i % 2], call))
    out[f"alternating_rps_budget{budget}"] = ALTERNATING / (time.perf_counter() - began)
    if budget == 1:
        out["switch_s"] = statistics.median(switches)
    await registry.shutdown()


async def measure(family: str) -> dict[str, float]:
    out: dict[str, float] = {}
    await _lazy_and_memory(family, out)
    for budget in (1, 2):
        await _alternating(family, budget, out)
    return out


def _row(family: str, med: dict[str, float]) -> str:
    b1, b2 = med["alternating_rps_budget1"], med["alternating_rps_budget2"]
    memory = " / ".join(
        f"{med[k]:.1f}" for k in sorted(med) if k.startswith("memory_mb_")
    )
    return (
        f"| {family} | {med['warm_s']:.3f} | {med['lazy_first_s']:.3f} | "
        f"{med['switch_s']:.3f} | {b1:.2f} | {b2:.2f} | {b1 / b2:.2f}x | {memory} |"
    )


def _adapter_row(family: str, med: dict[str, float]) -> str:
    first, later = med["adapter_first_extra_s"], med["adapter_later_extra_s"]
    verdict = "met" if max(first, later) < ACTIVATION_TARGET_S else "**MISSED**"
    return (
        f"| {family} | {med['adapter_load_s'] * 1e3:.0f} | {first * 1e3:.0f} | "
        f"{later * 1e3:.0f} | {ACTIVATION_TARGET_S * 1e3:.0f} ({verdict}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=",".join(FAMILIES))
    args = parser.parse_args()
    families = [f for f in args.only.split(",") if f]
    medians: dict[str, dict[str, float]] = {}
    for family in families:
        runs = [asyncio.run(measure(family)) for _ in range(args.repeats)]
        medians[family] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        "| family | warm request (s) | lazy first request (s) | switch at budget 1 "
        "(s) | alternating req/s, budget 1 | budget 2 | 1 / 2 | memory MB (a / b) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for family, med in medians.items():
        print(_row(family, med))
    print()
    print(
        "| adapter | load (ms) | first request, extra (ms) | later requests, "
        "extra (ms) | target (ms) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for family, med in medians.items():
        if family in ADAPTERS:
            print(_adapter_row(family, med))


if __name__ == "__main__":
    main()
