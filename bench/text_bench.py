"""Text benchmark: Maestro's `StreamText` against vLLM's own OpenAI server.

Three sides run the same demo model with the same engine settings, one after
the other (they would fight over the CPUs otherwise): vLLM's `AsyncLLM` inside
the load generator's process (the limit: no server at all), vLLM's OpenAI
server, and Maestro. Each gets the same load from `bench.loadgen` in its own
process: the same prompt token ids, 64 output tokens, greedy, at each
concurrency. The ratios maestro/vllm say what the gRPC + Ray Serve path costs
next to vLLM's server on the same machine; maestro/engine what it costs next
to no server.

`measure(...)` is the importable entry point (`bench.suite` uses it, with a
Maestro stack of its own) and returns a `TextResult`; `bench.text.section`
renders one. `main` is the stand-alone script.

Usage: ``python -m bench.text_bench [--quick] [--concurrency 1 8 32 64]
[--sides engine vllm maestro] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.procs import Server
from bench.lib.serve_config import ROOT
from bench.text import runs, section, servers
from bench.text.prompts import (
    MODEL_DIR,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    write_prompt_files,
)
from bench.text.result import SIDE_LABELS, SIDES, TextResult


def measure(
    concurrencies: Sequence[int],
    quick: bool,
    workdir: Path,
    sides: Sequence[str] = SIDES,
    maestro: Server | None = None,
) -> TextResult:
    """Every side in `sides` at every concurrency.

    `maestro`: a running Maestro stack to measure instead of starting one
    (its `name` must be "maestro"). Logs of the started servers land in
    `workdir`; vLLM's KV-cache size is read from them.
    """
    if not (MODEL_DIR / "config.json").exists():
        raise RuntimeError(f"no demo model at {MODEL_DIR}: python -m models.build_demo")
    repeats = runs.QUICK_REPEATS if quick else runs.REPEATS
    log("building prompts")
    files, counts = write_prompt_files(concurrencies, quick, workdir)
    results: dict[str, runs.Runs] = {}
    kv: dict[str, int | None] = {}
    for side in (s for s in SIDES if s in sides):
        if side == "engine":
            results[side], side_log = runs.bench_engine(files, workdir, repeats)
        elif side == "maestro" and maestro is not None:
            results[side] = {}
            if runs.run_side(maestro, files, list(files), results[side], repeats):
                raise RuntimeError("the Maestro stack died during the text runs")
            side_log = maestro.log_text()
        else:
            results[side], side_log = runs.bench_side(side, files, workdir, repeats)
        kv[side] = runs.kv_cache_tokens(side_log)
    info = {
        "machine": machine(),
        "quick": quick,
        "concurrency": list(concurrencies),
        "prompts": counts,
        "repeats": repeats,
        "prompt_tokens": PROMPT_TOKENS,
        "max_tokens": OUTPUT_TOKENS,
        "kv_cache_tokens_by_side": kv,
        "kv_cache_tokens": ", ".join(
            f"{SIDE_LABELS[k]} {v:,} tokens" for k, v in kv.items() if v
        ),
    }
    return TextResult(results, info)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer prompts, one repeat")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument(
        "--messages-per-second",
        type=float,
        help="override the text app's stream.messages_per_second budget",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.messages_per_second:
        servers.STREAM_OVERRIDES["messages_per_second"] = args.messages_per_second
    stamp = utc_stamp()
    # Server logs and prompts; kept when something fails, for the post-mortem.
    workdir = Path(tempfile.mkdtemp(prefix="maestro-bench-"))
    try:
        result = measure(args.concurrency, args.quick, workdir, args.sides)
    except BaseException:
        log(f"failed; server logs kept in {workdir}")
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    result.info["timestamp"] = stamp
    text, document = section.report(result)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"text-{stamp}.json").write_text(json.dumps(document, indent=2))
    (args.out / f"text-{stamp}.md").write_text(text)
    log(f"wrote {args.out / f'text-{stamp}.md'} and .json")
    return 1 if result.errors() else 0


if __name__ == "__main__":
    sys.exit(main())
