"""Model switching on the demo engines (no Ray): lazy, warm, alternating.

    python -m bench.registry_bench [--repeats 5]

For the image and voice families, two ids registered on the same demo
checkpoint are two separately loaded engines. Reported, as medians of
`--repeats` runs: a lazy first request (load included) against a warm one,
and a stream of requests alternating between the two models at
`max_loaded_models` 1 (every request switches: unload + load) and 2 (both
stay loaded), as requests per second and the budget-1 / budget-2 ratio.
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
from deployments.engines.image.types import ImageRequest
from deployments.engines.voice.config import VoiceEngineConfig
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.types import SpeechRequest
from deployments.registry import ModelRegistry, ModelSpec

DEMO = PROJECT_ROOT / "models" / "demo"
ALTERNATING = 8  # requests per alternating run


async def _image(engine: Any) -> None:
    await engine.generate(ImageRequest(prompt="x", width=64, height=64, steps=1))


async def _voice(engine: Any) -> None:
    await engine.synthesize(SpeechRequest(text="Hello there."))


FAMILIES: dict[str, tuple[Callable[[str], Any], Any, Any]] = {
    "image": (
        lambda i: ImageEngineConfig(model=str(DEMO / "image"), model_id=i),
        ImageEngine,
        _image,
    ),
    "voice": (
        lambda i: VoiceEngineConfig(model=str(DEMO / "voice"), model_id=i),
        VoiceEngine,
        _voice,
    ),
}


async def _timed(registry: ModelRegistry, model: str, call: Any) -> float:
    began = time.perf_counter()
    async with registry.use(model) as engine:
        await call(engine)
    return time.perf_counter() - began


async def measure(family: str) -> dict[str, float]:
    config, make, call = FAMILIES[family]
    specs = [ModelSpec(config("a")), ModelSpec(config("b"))]
    out: dict[str, float] = {}
    registry = ModelRegistry(specs, make)
    await registry.preload()
    await _timed(registry, "a", call)  # warm-up
    out["warm_s"] = await _timed(registry, "a", call)
    out["lazy_first_s"] = await _timed(registry, "b", call)  # includes the load
    await registry.shutdown()
    for budget in (1, 2):
        registry = ModelRegistry(specs, make, max_loaded_models=budget)
        await registry.preload()
        await _timed(registry, "b", call)
        began = time.perf_counter()
        for i in range(ALTERNATING):
            await _timed(registry, "ab"[i % 2], call)
        out[f"alternating_rps_budget{budget}"] = ALTERNATING / (
            time.perf_counter() - began
        )
        await registry.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        "| family | warm request (s) | lazy first request (s) | alternating "
        "req/s, budget 1 | budget 2 | budget 1 / 2 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for family in FAMILIES:
        runs = [asyncio.run(measure(family)) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        b1, b2 = med["alternating_rps_budget1"], med["alternating_rps_budget2"]
        print(
            f"| {family} | {med['warm_s']:.3f} | {med['lazy_first_s']:.3f} | "
            f"{b1:.2f} | {b2:.2f} | {b1 / b2:.2f}x |"
        )


if __name__ == "__main__":
    main()
