"""The Markdown report of a run."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.lib.markdown import fmt
from bench.reliability.results import FaultRun, ReliabilityResult, StormRun
from bench.reliability.settings import (
    CALL_EVERY_S,
    CALL_TIMEOUT_S,
    FAMILIES,
    HEALTH_EVERY_S,
    IDLE_S,
    OVERLOAD_FACTOR,
    RSS_EVERY_S,
    STORM_FAMILIES,
)
from bench.reliability.stats import median


def _ms(v: float | None) -> str:
    return fmt(None if v is None else v * 1000, 0)


def _s(v: float | None, digits: int = 2) -> str:
    return fmt(v, digits)


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in codes.items()) or "-"


def _health(changes: list[tuple[float, str]]) -> str:
    return " → ".join(f"{a} @{t:.1f}" for t, a in changes)


def _storm_rows(runs: list[StormRun]) -> list[str]:
    rows = []
    for i, r in enumerate(runs, 1):
        ok_after = r.call_after_code == "OK"
        after = _s(r.call_after_s, 3) if ok_after else r.call_after_code
        ok_before = r.call_before_code == "OK"
        before = _s(r.call_before_s, 3) if ok_before else r.call_before_code
        rows.append(
            f"| {r.family} | {i} | {r.offered:,} | {r.ok:,} | {r.refused:,} | "
            f"{_codes(r.other)} | {_s(r.ok_p50_s)} / {_s(r.ok_p99_s)} | "
            f"{_ms(r.refused_p50_s)} / {_ms(r.refused_p99_s)} | {_s(r.storm_s, 1)} | "
            f"{'yes' if r.replica_kept else '**no**'} | "
            f"{fmt(r.rss_idle_mib, 0)} → {fmt(r.rss_peak_mib, 0)} | "
            f"{before} → {after} |"
        )
    if len(runs) > 1:

        def m(name: str) -> float | None:
            return median([getattr(r, name) for r in runs])

        kept = sum(r.replica_kept for r in runs)
        rows.append(
            f"| {runs[0].family} | **median** | {runs[0].offered:,} | "
            f"{fmt(m('ok'), 0)} | {fmt(m('refused'), 0)} | - | "
            f"{_s(m('ok_p50_s'))} / {_s(m('ok_p99_s'))} | "
            f"{_ms(m('refused_p50_s'))} / {_ms(m('refused_p99_s'))} | "
            f"{_s(m('storm_s'), 1)} | {kept}/{len(runs)} | "
            f"{fmt(m('rss_idle_mib'), 0)} → {fmt(m('rss_peak_mib'), 0)} | "
            f"{_s(m('call_before_s'), 3)} → {_s(m('call_after_s'), 3)} |"
        )
    return rows


def _fault_rows(runs: list[FaultRun]) -> list[str]:
    rows = []
    for i, r in enumerate(runs, 1):
        stream = (
            f"{r.stream_code} after {_s(r.stream_error_s)} s" if r.stream_code else "-"
        )
        replaced = (
            "-"
            if r.replica_before is None or r.replica_after is None
            else ("yes" if r.replica_before != r.replica_after else "no")
        )
        rows.append(
            f"| {r.family} | {i} | {stream} | {_s(r.down_s)} | {_s(r.not_serving_s)} | "
            f"{_s(r.serving_s, 1)} | {_s(r.first_ok_s, 1)} | {_codes(r.calls)} | "
            f"{_s(r.slowest_failure_s)} | {replaced} |"
        )
    if len(runs) > 1:

        def m(name: str) -> float | None:
            return median([getattr(r, name) for r in runs])

        total: Counter[str] = Counter()
        for r in runs:
            total.update(r.calls)
        total = Counter(dict(total.most_common()))
        rows.append(
            f"| {runs[0].family} | **median** | - | {_s(m('down_s'))} | "
            f"{_s(m('not_serving_s'))} | {_s(m('serving_s'), 1)} | "
            f"{_s(m('first_ok_s'), 1)} | all runs: {_codes(dict(total))} | "
            f"{_s(m('slowest_failure_s'))} | - |"
        )
    return rows


def markdown(result: ReliabilityResult, stamp: str, info: dict[str, Any]) -> str:
    lines = [
        f"# Reliability ({stamp})",
        "",
        f"One stack ({', '.join(FAMILIES)} from serve_config.yaml, ready in "
        f"{result.startup_s:.0f} s), {result.repeats} repeat(s), "
        f"{result.seconds:.0f} s in all; {info['cpu_count']} CPUs "
        f"({info['cpu_model']}), {info['memory_gib']} GiB.",
        "",
        "## Overload",
        "",
        f"{OVERLOAD_FACTOR} x what each deployment admits "
        f"(max_ongoing + max_queued: "
        + ", ".join(f"{f} {n}" for f, n in result.admitted.items() if f != "text")
        + ") offered at once, `retry=None`; image 64x64, 1 step; voice a short "
        "`Synthesize`. Latencies from each call's own start; RSS of the replica "
        f"process, idle ({IDLE_S:g} s before) → peak during the storm "
        f"(sampled every {RSS_EVERY_S:g} s).",
        "",
        "| family | run | offered | OK | RESOURCE_EXHAUSTED | other | OK p50 / p99 (s) "
        "| refused p50 / p99 (ms) | storm (s) | replica kept | RSS idle → peak (MiB) "
        "| one call before → after (s) |",
        "|---|---|---:|---:|---:|---|---|---|---:|---|---|---|",
    ]
    for family in STORM_FAMILIES:
        lines += _storm_rows([r for r in result.storms if r.family == family])
    lines += [
        "",
        "## Faults",
        "",
        f"SIGKILL; meanwhile a call started every {CALL_EVERY_S:g} s (open loop, "
        f"{CALL_TIMEOUT_S:g} s "
        f"deadline, `retry=None`; voice `Synthesize`, text `GenerateText` "
        f"max_tokens=2) and Health every {HEALTH_EVERY_S:g} s. Times in seconds "
        "from the kill; *calls meanwhile*: the background calls started from the "
        "kill until Health said SERVING again, by code; *first OK call*: when "
        "the first OK answer of one arrived.",
        "",
        "- voice: the replica (`ServeReplica:voice:Voice`) killed mid `StreamSpeech`.",
        "- text: vLLM's engine core (`VLLM::EngineCore`) killed under the text "
        "replica.",
        "",
        "| family | run | live stream got | → not SERVING | → NOT_SERVING "
        "| → SERVING | → first OK call | calls meanwhile | slowest failure (s) "
        "| replica replaced |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for family in ("voice", "text"):
        lines += _fault_rows([r for r in result.faults if r.family == family])
    lines += ["", "Health answers as they changed (seconds after the kill):", ""]
    for r in result.faults:
        lines.append(f"- {r.family}: {_health(r.health)}")
    if result.errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{e[:400]}`" for e in result.errors]
    return "\n".join(lines) + "\n"
