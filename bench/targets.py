"""Every target the benchmarks hold Maestro to, defined once.

The checks (`bench.text_bench`, `bench.image_bench`, ...) and the suite's
report read these; a ratio is always *Maestro ÷ peer* (bench/README.md).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Comparison = Literal[">=", "<=", "<", ">"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Target:
    """A figure, the bound it must meet, and which way."""

    name: str
    label: str  # the row in the report's targets table
    threshold: float
    comparison: Comparison
    description: str
    unit: str = "x"  # "x": a ratio
    at_concurrency: int | None = None
    in_suite: bool = True  # False: only the family's own script checks it

    @property
    def want(self) -> str:
        """`>= 0.9x`, `< 8`: the bound as the report prints it."""
        return f"{self.comparison} {self.threshold:g}{self.unit}"

    def met(self, value: float | None) -> bool:
        return value is not None and _OPS[self.comparison](value, self.threshold)

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        return "met" if self.met(value) else "**MISSED**"


def _targets(*targets: Target) -> dict[str, Target]:
    return {t.name: t for t in targets}


TARGETS = _targets(
    Target(
        "text_vllm_tok_s",
        "text c=32 tok/s vs vLLM server",
        0.9,
        ">=",
        "StreamText output tok/s at concurrency 32 over vLLM's OpenAI server's.",
        at_concurrency=32,
    ),
    Target(
        "text_vllm_ttft",
        "text c=32 TTFT p50 vs vLLM server",
        1.2,
        "<=",
        "StreamText TTFT p50 at concurrency 32 over vLLM's OpenAI server's.",
        at_concurrency=32,
    ),
    Target(
        "text_engine_tok_s",
        "text c=32 tok/s vs raw engine",
        0.8,
        ">=",
        "StreamText output tok/s at concurrency 32 over vLLM's AsyncLLM in-process.",
        at_concurrency=32,
    ),
    Target(
        "text_gap_p50_ms",
        "text c=32 Maestro gap p50 (ms)",
        100.0,
        "<=",
        "Median gap between StreamText messages at concurrency 32 (text_bench).",
        unit="",
        at_concurrency=32,
        in_suite=False,
    ),
    Target(
        "image_batched",
        "image c=8 vs raw batched",
        0.8,
        ">=",
        "Served images/s at concurrency 8 over the raw pipeline, 8 prompts a call.",
        at_concurrency=8,
    ),
    Target(
        "voice_first_chunk",
        "voice served first chunk / whole",
        0.35,
        "<=",
        "Served time to the first StreamSpeech chunk over the whole Synthesize.",
    ),
    Target(
        "studio",
        "studio Compose / sequential sum",
        0.6,
        "<=",
        "Compose wall time over its stages run one after another.",
    ),
    Target(
        "stack_memory_gib",
        "whole demo stack memory (PSS, GiB)",
        8.0,
        "<",
        "Peak PSS sum over every process of the demo stack, in any phase.",
        unit="",
    ),
    Target(
        "tracing",
        "tracing on / off tok/s",
        0.95,
        ">=",
        "StreamText tok/s at c=32, tracing at sampling 1.0 over tracing off.",
    ),
    Target(
        "gpu_image_engine",
        "GPU image engine / raw diffusers",
        1.05,
        "<=",
        "Image engine wall time over plain diffusers, SDXL 1024², 30 steps (GPU).",
    ),
    Target(
        "cache_hit_rate",
        "response cache hit rate (Zipf workload)",
        0.3,
        ">",
        "Share of a Zipf-drawn stream of deterministic requests answered from "
        "the cache (bench.cache_bench).",
        unit="",
        in_suite=False,
    ),
    Target(
        "cache_image_hit_speedup",
        "image miss / hit latency",
        50.0,
        ">=",
        "Served GenerateImage p50 latency of a miss over a hit (bench.cache_bench).",
        in_suite=False,
    ),
)
