"""Where the CPU goes while text streams: CPU-seconds per 1,000 output tokens
for every process on each side, and a sampled profile of Maestro's replica.

    python -m bench.cpu_account [--concurrency 32] [--repeats 3] [--profile-s 15]

The same load (`bench.loadgen`, the text benchmark's prompts, 64 greedy output
tokens) against vLLM's OpenAI server and against Maestro's whole four-family
stack (`serve_config.yaml`, HAProxy ingress), one side after the other. Each
side runs in a session of its own (`bench.lib.procs`), so every process it
started (API server, engine core and worker; HAProxy, Ray's GCS, raylet,
dashboard and agents, every replica, vLLM under the text replica) is found by
its session and charged its user + system CPU during each measured run; the
load generator is charged through RUSAGE_CHILDREN. Medians of `--repeats`
runs. Then, on Maestro, py-spy samples the text replica during one more run
and the functions holding the most samples are listed (self and total).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil

from bench.lib.log import log
from bench.lib.memory import process_label
from bench.text.prompts import write_prompt_files
from bench.text.runs import run_loadgen
from bench.text.servers import serving

LOADGEN = "load generator"
TEXT_REPLICA = "ray::ServeReplica:text:Text"


def _session_cpu(sid: int) -> dict[int, tuple[str, float]]:
    """pid -> (label, CPU seconds so far) for every live process of `sid`."""
    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) != sid:
                continue
            times = proc.cpu_times()
            out[proc.pid] = (process_label(proc), times.user + times.system)
        except (psutil.Error, OSError):
            continue
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _one_run(server: Any, sid: int, path: Path, concurrency: int, warmup: int) -> Any:
    before, loadgen_before = _session_cpu(sid), _children_cpu()
    result = run_loadgen(server, path, concurrency, warmup)
    after, loadgen_after = _session_cpu(sid), _children_cpu()
    per_label: collections.Counter[str] = collections.Counter()
    for pid, (label, cpu) in after.items():
        per_label[label] += cpu - before.get(pid, (label, 0.0))[1]  # new: all
    per_label[LOADGEN] = loadgen_after - loadgen_before
    per_1k = 1000 / max(result["completion_tokens"], 1)
    return result, {label: cpu * per_1k for label, cpu in per_label.items()}


def _profile(pid: int, seconds: float, out: Path) -> threading.Thread:
    """py-spy record of `pid` (collapsed stacks) in the background."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    cmd = [py_spy, "record", "-p", str(pid), "-d", str(int(seconds))]
    cmd += ["-f", "raw", "-o", str(out), "--nonblocking", "-r", "100"]
    thread = threading.Thread(
        target=subprocess.run, args=(cmd,), kwargs={"capture_output": True}
    )
    thread.start()
    return thread


def _top_functions(raw: Path, n: int = 12) -> list[tuple[str, float, float]]:
    """(function, self %, total %) of the most sampled frames."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] for f in stack.split(";")]
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    return [
        (name, 100 * count / samples, 100 * total[name] / samples)
        for name, count in own.most_common(n)
    ]


def measure_side(
    name: str,
    files: Any,
    workdir: Path,
    concurrency: int,
    repeats: int,
    profile_s: float,
) -> dict[str, Any]:
    path, warmup = files[concurrency]
    with serving(name, workdir) as server:
        sid = os.getsid(server.proc.pid)
        run_loadgen(server, path, concurrency, warmup)  # warm-up, not counted
        runs = [
            _one_run(server, sid, path, concurrency, warmup) for _ in range(repeats)
        ]
        profile: list[tuple[str, float, float]] = []
        if name == "maestro" and profile_s > 0:
            (pid,) = [
                p
                for p, (label, _) in _session_cpu(sid).items()
                if label == TEXT_REPLICA
            ]
            raw = workdir / "text-replica.pyspy.txt"
            thread = _profile(pid, profile_s, raw)
            run_loadgen(server, path, concurrency, warmup)
            thread.join()
            profile = _top_functions(raw) if raw.exists() else []
    labels = sorted({label for _, per in runs for label in per})
    cpu = {
        label: statistics.median(per.get(label, 0.0) for _, per in runs)
        for label in labels
    }
    tok_s = statistics.median(result["output_tok_s"] for result, _ in runs)
    return {"tok_s": tok_s, "cpu_s_per_1k": cpu, "profile": profile}


def report(sides: dict[str, dict[str, Any]], concurrency: int) -> str:
    lines = [f"CPU-seconds per 1,000 output tokens at concurrency {concurrency}", ""]
    for name, side in sides.items():
        cpu = side["cpu_s_per_1k"]
        lines += [
            f"{name}: {side['tok_s']:.0f} output tok/s, "
            f"{sum(cpu.values()):.2f} CPU-s per 1k tokens in all",
            "",
            "| process | CPU-s per 1k tokens | share |",
            "| --- | ---: | ---: |",
        ]
        total = sum(cpu.values())
        for label, value in sorted(cpu.items(), key=lambda kv: -kv[1]):
            if value >= 0.005:
                lines.append(f"| {label} | {value:.3f} | {100 * value / total:.0f}% |")
        lines.append("")
        if side["profile"]:
            lines += [
                "Text replica, py-spy (100 Hz), the frames holding most samples:",
                "",
                "| function | self % | total % |",
                "| --- | ---: | ---: |",
            ]
            lines += [f"| `{f}` | {s:.1f} | {t:.1f} |" for f, s, t in side["profile"]]
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile-s", type=float, default=15.0)
    parser.add_argument("--sides", nargs="+", default=["vllm", "maestro"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maestro-cpu-") as tmp:
        workdir = Path(tmp)
        files, _ = write_prompt_files([args.concurrency], False, workdir)
        sides = {}
        for name in args.sides:
            log(f"{name}: measuring")
            sides[name] = measure_side(
                name, files, workdir, args.concurrency, args.repeats, args.profile_s
            )
        print(report(sides, args.concurrency))


if __name__ == "__main__":
    main()
