"""What tracing costs: `StreamText` throughput with every trace recorded vs none.

`python -m bench.tracing_bench [--rounds 2] [--repeats 3] [--prompts 192]`
starts the full stack of serve_config.yaml again and again, one at a time
(they would share the CPUs), alternating `observability.tracing.enabled:
false` and tracing on at `sampling_ratio: 1.0` (spans to a JSON-lines file,
the demo default): off, on, off, on, ... so that load drifting on a shared
machine hits both sides alike.
Each runs the text benchmark's load (bench/loadgen.py: 64-token prompts,
64 new tokens, concurrency 32) and the median run's output tokens per second
are compared. Target: traced / untraced >= 0.95. Metrics are recorded in
both runs (they have no off switch), so this isolates tracing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import text_bench
from bench.text_bench import ROOT, Server, log
from deployments import launch

CONCURRENCY = 32
TARGET_RATIO = 0.95


def start(workdir: Path, label: str, tracing: dict[str, Any]) -> Server:
    """The stack of serve_config.yaml on free ports, with `tracing` swapped in."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = text_bench.free_port()
    config["grpc_options"]["port"] = port
    config["http_options"]["port"] = text_bench.free_port()
    config.setdefault("observability", {})["tracing"] = tracing
    path = workdir / f"serve_config-{label}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = launch.side_by_side_environment(text_bench._venv_env())
    proc, log_path = text_bench._spawn(
        f"maestro-{label}", launch.command(path), env, workdir
    )
    # Named "maestro": that is the loadgen backend it is driven with.
    return Server("maestro", proc, f"127.0.0.1:{port}", log_path)


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
        ready = text_bench.wait_ready(server, text_bench.maestro_ready)
        log(f"{label}: ready in {ready:.0f} s")
        runs = []
        for i in range(repeats):
            run = text_bench.run_loadgen(server, prompts, CONCURRENCY, warmup)
            log(
                f"{label}: run {i + 1}: {run['output_tok_s']} tok/s, TTFT p50 "
                f"{run['ttft_p50_ms']} ms, errors {run['errors']}"
            )
            runs.append(run)
        return runs
    finally:
        log(f"{label}: stopping")
        text_bench.stop(server)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="off/on stack pairs")
    p.add_argument("--repeats", type=int, default=3, help="runs per stack")
    p.add_argument("--prompts", type=int, default=192, help="measured prompts a run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers import AutoTokenizer

    workdir = Path(tempfile.mkdtemp(prefix="maestro-tracing-bench-"))
    tokenizer = AutoTokenizer.from_pretrained(str(text_bench.MODEL_DIR))
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
            prompts = text_bench.make_prompts(
                tokenizer, f"tracing-{name}", warmup + args.prompts
            )
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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {
        "timestamp": stamp,
        "concurrency": CONCURRENCY,
        "prompts": args.prompts,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "results": results,
        "spans_written": span_lines,
        "ratio_on_over_off": round(ratio, 3),
        "target": TARGET_RATIO,
        "machine": text_bench.machine(),
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
        f"Ratio on/off: **{ratio:.3f}** (target >= {TARGET_RATIO}).\n"
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"tracing-{stamp}.json").write_text(json.dumps(document, indent=2))
    (args.out / f"tracing-{stamp}.md").write_text(text)
    errors = results["on"]["errors"] + results["off"]["errors"]
    return 1 if errors or ratio < TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
