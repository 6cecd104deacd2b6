"""Measured runs: `bench.loadgen` against each side, the median run kept."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.lib.log import log
from bench.lib.probes import STARTUP_S
from bench.lib.procs import Server, spawn, stop, venv_env
from bench.lib.serve_config import ROOT
from bench.text.prompts import OUTPUT_TOKENS
from bench.text.servers import is_alive, serving

RESTARTS = 2
# Measured runs per concurrency on each side; the median one is reported.
REPEATS = 3
QUICK_REPEATS = 1
PromptFiles = dict[int, tuple[Path, int]]  # concurrency -> (prompts file, warm-up)
Runs = dict[int, dict[str, Any]]  # concurrency -> loadgen summary
KV_CACHE_LINE = re.compile(r"(\w+) KV cache size: ([\d,]+) tokens")


def run_loadgen(
    server: Server, prompts_path: Path, concurrency: int, warmup: int
) -> dict[str, Any]:
    """One measured run in a separate process; its last stdout line is JSON."""
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--backend",
        server.name,
        "--target",
        server.target,
        "--prompts",
        str(prompts_path),
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(warmup),
        "--max-tokens",
        str(OUTPUT_TOKENS),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}):\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench_engine(
    prompt_files: PromptFiles, workdir: Path, repeats: int
) -> tuple[Runs, str]:
    """The raw engine (the limit): every run in one load-generator process.

    The process starts vLLM (which spawns its engine core), so it runs in a
    session of its own and whatever is left of that session is killed after.
    Returns the results and the process's log (vLLM logs its KV-cache size).
    """
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--backend",
        "engine",
        "--max-tokens",
        str(OUTPUT_TOKENS),
    ]
    for concurrency, (path, warmup) in prompt_files.items():
        cmd += [f"--run={path}:{concurrency}:{warmup}"] * repeats
    log(f"engine: in-process AsyncLLM, {len(prompt_files)} concurrencies ...")
    # PYTHONUNBUFFERED: each run's JSON line reaches engine.out as it ends.
    env = {**venv_env(), "PYTHONUNBUFFERED": "1"}
    proc, log_path = spawn("engine", cmd, env, workdir, stdout=True)
    server = Server("engine", proc, "", log_path)
    try:
        proc.wait(timeout=STARTUP_S + 300 * len(prompt_files) * repeats)
    finally:
        stop(server)
    out = (workdir / "engine.out").read_text()
    if proc.returncode != 0:
        raise RuntimeError(
            f"engine loadgen failed ({proc.returncode}):\n{server.tail()}"
        )
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    results: Runs = {}
    for concurrency in prompt_files:
        mine = [r for r in runs if r["concurrency"] == concurrency]
        results[concurrency] = median_run(mine)
        r = results[concurrency]
        log(
            f"engine: concurrency {concurrency}: {r['output_tok_s']} tok/s, "
            f"TTFT p50 {r['ttft_p50_ms']} ms"
        )
    # vLLM logs to stdout (its KV-cache size among it), warnings to stderr.
    return results, out + server.log_text()


def kv_cache_tokens(log_text: str) -> int | None:
    """The KV-cache size vLLM logged at start ("CPU KV cache size: N tokens")."""
    found = KV_CACHE_LINE.findall(log_text)
    return int(found[-1][1].replace(",", "")) if found else None


def bench_side(
    name: str, prompt_files: PromptFiles, workdir: Path, repeats: int = REPEATS
) -> tuple[Runs, str]:
    """Start one side, run every concurrency against it, stop it.

    The machine is shared: someone's `ray stop --force` can kill a Ray
    cluster mid-run. A run whose server is gone afterwards is discarded and
    redone on a fresh server, at most RESTARTS times. Returns the results and
    the server's log.
    """
    results: Runs = {}
    pending = list(prompt_files)
    for attempt in range(RESTARTS + 1):
        with serving(name, workdir) as server:
            died = run_side(server, prompt_files, pending, results, repeats)
            server_log = server.log_text()
        if not died:
            return results, server_log
        log(f"{name}: restarting (attempt {attempt + 2} of {RESTARTS + 1})")
    raise RuntimeError(f"{name}: server kept dying; runs left: {pending}")


def run_side(
    server: Server,
    prompt_files: PromptFiles,
    pending: list[int],
    results: Runs,
    repeats: int,
) -> bool:
    """The pending concurrencies against a running server; True if it died."""
    name = server.name
    while pending:
        concurrency = pending[0]
        path, warmup = prompt_files[concurrency]
        log(f"{name}: concurrency {concurrency} ...")
        try:
            result = median_run(
                [run_loadgen(server, path, concurrency, warmup) for _ in range(repeats)]
            )
        except RuntimeError as exc:
            if is_alive(server):
                raise
            log(f"{name}: server died during the run: {str(exc)[-300:]}")
            return True
        if not is_alive(server):
            log(f"{name}: server died during the run; redoing it")
            return True
        log(
            f"{name}: concurrency {concurrency}: {result['output_tok_s']} "
            f"tok/s, TTFT p50 {result['ttft_p50_ms']} ms, "
            f"errors {result['errors']}"
        )
        results[concurrency] = result
        pending.pop(0)
    return False


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput; the others are kept beside it.

    A 2-core machine makes single runs swing (vLLM's server sometimes bursts
    whole streams at once), so each side repeats and reports its median run.
    """
    ranked = sorted(runs, key=lambda r: r["output_tok_s"])
    median = dict(ranked[len(ranked) // 2])
    median["repeats_output_tok_s"] = [r["output_tok_s"] for r in runs]
    return median
