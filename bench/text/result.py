"""What the text benchmark measured, and the targets it is held to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.lib.markdown import ratio
from bench.lib.results import int_keys
from bench.targets import TARGETS, Target

SIDES = ("engine", "vllm", "maestro")  # one at a time: they would share the CPUs
SIDE_LABELS = {"engine": "raw engine", "vllm": "vLLM server", "maestro": "Maestro"}
TARGET_CONCURRENCY = TARGETS["text_vllm_tok_s"].at_concurrency or 32


@dataclass
class TextResult:
    """Per side and concurrency, `bench.loadgen`'s summary of the median run.

    `info`: the run's settings (concurrencies, prompts, repeats, tokens,
    machine, the KV cache vLLM took per side).
    """

    results: dict[str, dict[int, dict[str, Any]]]
    info: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextResult:
        results = {side: int_keys(runs) for side, runs in data["results"].items()}
        return cls(results, dict(data["info"]))

    def merged(self, other: TextResult | None) -> TextResult:
        """Both results' sides together (the suite measures peers apart)."""
        if other is None:
            return self
        return TextResult({**self.results, **other.results}, self.info)

    @property
    def concurrencies(self) -> list[int]:
        return [int(c) for c in self.info["concurrency"]]

    def sides_at(self, concurrency: int) -> dict[str, dict[str, Any]]:
        """The runs at `concurrency`, in SIDES order, of the sides that ran it."""
        return {
            n: self.results[n][concurrency]
            for n in SIDES
            if n in self.results and self.results[n].get(concurrency)
        }

    def errors(self) -> int:
        return sum(r["errors"] for side in self.results.values() for r in side.values())


def checks(sides: dict[str, dict[str, Any]]) -> list[tuple[Target, float | None]]:
    """The targets at TARGET_CONCURRENCY for the sides there, with their values."""
    maestro = sides.get("maestro")
    if maestro is None:
        return []
    vllm, engine = sides.get("vllm"), sides.get("engine")
    out: list[tuple[Target, float | None]] = []
    if vllm is not None:
        out.append(
            (TARGETS["text_vllm_tok_s"], side_ratio(maestro, vllm, "output_tok_s"))
        )
        out.append(
            (TARGETS["text_vllm_ttft"], side_ratio(maestro, vllm, "ttft_p50_ms"))
        )
    if engine is not None:
        out.append(
            (TARGETS["text_engine_tok_s"], side_ratio(maestro, engine, "output_tok_s"))
        )
    out.append((TARGETS["text_gap_p50_ms"], maestro.get("gap_p50_ms")))
    return out


def side_ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    """a[key] / b[key], None where either is missing."""
    return ratio(a.get(key), b.get(key))
