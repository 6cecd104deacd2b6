"""What tracing costs: `StreamText` throughput with every trace recorded vs none.

`python -m bench.tracing_bench [--rounds 2] [--repeats 3] [--prompts 192]`
starts the full stack of serve_config.yaml again and again, one at a time
(they would share the CPUs), alternating `observability.tracing.enabled:
false` and tracing on at `sampling_ratio: 1.0` (spans to a JSON-lines file,
the demo default): off, on, off, on, ... so that load drifting on a shared
machine hits both sides alike.
Each runs the text benchmark's load (bench/loadgen.py: 64-token prompts,
64 new tokens, concurrency 32) and the median run's output tokens per second
are compared. Target (`tracing` in `bench.targets`): traced / untraced
>= 0.95. Metrics are recorded in both runs (they have no off switch), so this
isolates tracing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.probes import family_serving, wait_until_serving
from bench.lib.procs import Server, stop
from bench.lib.serve_config import ROOT, base_config
from bench.lib.stack import start_stack
from bench.targets import TARGETS
from bench.text.prompts import make_prompts, tokenizer
from bench.text.runs import run_loadgen

CONCURRENCY = 32
TARGET = TARGETS["tracing"]


def start(workdir: Path, label: str, tracing: dict[str, Any]) -> Server:
    """The stack of serve_config.yaml on free ports, with `tracing` swapped in."""
    config = base_config()
    config.setdefault("observability", {})["tracing"] = tracing
    # Named "maestro": that is the loadgen backend it is driven with.
    return start_stack(config, workdir, "maestro", log_name=f"maestro-{label}")


def measure(
    workdir: Path,
    label: str,
    tracing: dict[str, Any],
    prompts: Path,
    warmup: int,
    repeats: int,
) -> list[dict[str, Any]]:
    log(f"{label}: starting")
    server = start(workdir, label, tracing)
    try:
        ready = wait_until_serving(server, family_serving("text"))
        log(f"{label}: ready in {ready:.0f} s")
        runs = []
        for i in range(repeats):
            run = run_loadgen(server, prompts, CONCURRENCY, warmup)
            log(
                f"{label}: run {i + 1}: {run['output_tok_s']} tok/s, TTFT p50 "
                f"{run['ttft_p50_ms']} ms, errors {run['errors']}"
            )
            runs.append(run)
        return runs
    finally:
        log(f"{label}: stopping")
        stop(server)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="off/on stack pairs")
    p.add_argument("--repeats", type=int, default=3, help="runs per stack")
    p.add_argument("--prompts", type=int, default=192, help="measured prompts a run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="maestro-tracing-bench-"))
    tok = tokenizer()
    warmup = CONCURRENCY
    spans = workdir / "spans.jsonl"
    sides = {
        "off": {"enabled": False},
        "on": {
            "enabled": True,
            "exporter": "file",
            "file": str(spans),
            "sampling_ratio": 1.0,
        },
    }
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in sides}
    for round_ in range(args.rounds):
        for label, tracing in sides.items():
            # Fresh prompts per stack: no run reuses another's prefix cache.
            name = f"{label}-{round_}"
            prompts = make_prompts(tok, f"tracing-{name}", warmup + args.prompts)
            path = workdir / f"prompts-{name}.json"
            path.write_text(json.dumps(prompts))
            runs[label] += measure(workdir, name, tracing, path, warmup, args.repeats)
    results: dict[str, Any] = {}
    for label, side_runs in runs.items():
        tok_s = [r["output_tok_s"] for r in side_runs]
        results[label] = {
            "output_tok_s_median": statistics.median(tok_s),
            "output_tok_s": tok_s,
            "ttft_p50_ms": [r["ttft_p50_ms"] for r in side_runs],
            "errors": sum(r["errors"] for r in side_runs),
        }
    span_lines = sum(1 for _ in spans.open()) if spans.exists() else 0
    ratio = results["on"]["output_tok_s_median"] / results["off"]["output_tok_s_median"]
    stamp = utc_stamp()
    document = {
        "timestamp": stamp,
        "concurrency": CONCURRENCY,
        "prompts": args.prompts,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "results": results,
        "spans_written": span_lines,
        "ratio_on_over_off": round(ratio, 3),
        "target": TARGET.threshold,
        "machine": machine(),
    }
    text = (
        f"# Tracing overhead ({stamp})\n\n"
        f"StreamText, concurrency {CONCURRENCY}, {args.prompts} prompts x "
        f"{args.rounds * args.repeats} runs per side ({args.rounds} stacks each, "
        "alternating off/on), 64 prompt / 64 output tokens.\n\n"
        "| tracing | output tok/s (median) | runs | TTFT p50 ms |\n"
        "| --- | --- | --- | --- |\n"
        + "".join(
            f"| {label} | {r['output_tok_s_median']} | {r['output_tok_s']} | "
            f"{r['ttft_p50_ms']} |\n"
            for label, r in results.items()
        )
        + f"\nSpans written with tracing on: {span_lines}.\n"
        f"Ratio on/off: **{ratio:.3f}** (target {TARGET.want}).\n"
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"tracing-{stamp}.json").write_text(json.dumps(document, indent=2))
    (args.out / f"tracing-{stamp}.md").write_text(text)
    errors = results["on"]["errors"] + results["off"]["errors"]
    return 1 if errors or not TARGET.met(ratio) else 0


if __name__ == "__main__":
    sys.exit(main())
