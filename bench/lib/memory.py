"""What the processes of a stack hold in memory, sampled per phase."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.lib.log import log

GIB = 1024**3


def process_label(proc: psutil.Process) -> str:
    """A stable name for a stack process: Ray's process title, or the program.

    Ray titles its actors `ray::ServeReplica:<app>:<deployment>` (and appends
    the running method while one runs); vLLM titles its engine core
    `VLLM::EngineCore`.
    """
    try:
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    if not cmdline:
        return proc.name()
    first = cmdline[0]
    if first.startswith(("ray::", "VLLM::")):
        # Ray appends the running method: `ray::ServeController.listen_for_change`.
        return first.split()[0].split(".")[0]
    program = Path(first).name
    if program.startswith("python") and len(cmdline) > 1:
        if "-c" in cmdline:
            return "python -c"
        script = next((a for a in cmdline[1:] if not a.startswith("-")), "")
        return f"python {Path(script).name}"
    return program


class MemorySampler:
    """Samples, in a thread, the RSS of every process of one session.

    Per phase (`phase("text")`): each process's peak RSS, and the peak of the
    whole stack, summed as RSS (counts shared pages once per process, so an
    upper bound) and as PSS (shared pages split between their users, the
    honest sum). `timeline` keeps (seconds, RSS sum, {label: count}) for
    counting replicas over time.

    RSS comes from /proc/PID/statm every interval (cheap). PSS needs
    /proc/PID/smaps_rollup, which walks the process's page tables under its
    memory-map lock and stalls it meanwhile (measured here: a once-a-second
    PSS sample turned Maestro's paced text streams into bursts and cut its
    throughput by a third), so PSS is sampled only at the end of each phase
    (between measurements). Processes whose label starts with one of
    `exclude` (a benchmark's own helper deployment) are listed but left out
    of the sums.
    """

    def __init__(
        self, sid: int, interval_s: float = 1.0, exclude: tuple[str, ...] = ()
    ) -> None:
        self.sid = sid
        self.exclude = exclude
        self.interval_s = interval_s
        self.current = "start"
        self.phases: dict[str, dict[str, Any]] = {}
        self.timeline: list[tuple[float, float, dict[str, int]]] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._procs: dict[int, psutil.Process] = {}

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample(full=True)

    def phase(self, name: str) -> None:
        """Start phase `name`; the previous one ends with a PSS sample."""
        self.sample(full=True)
        self.current = name

    def _members(self) -> list[psutil.Process]:
        alive: dict[int, psutil.Process] = {}
        for pid in psutil.pids():
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    continue
                if os.getsid(pid) != self.sid:
                    continue
            except (psutil.Error, OSError):
                continue
            alive[pid] = self._procs.get(pid) or psutil.Process(pid)
        self._procs = alive
        return list(alive.values())

    def sample(self, full: bool = False) -> None:
        """One sample of every process: RSS, and PSS too when `full`."""
        rss_sum = pss_sum = 0
        counts: dict[str, int] = {}
        phase = self.phases.setdefault(
            self.current, {"peak_rss_sum": 0, "peak_pss_sum": 0, "processes": {}}
        )
        for proc in self._members():
            try:
                label = process_label(proc)
                mem = proc.memory_full_info() if full else proc.memory_info()
            except (psutil.Error, OSError):
                continue
            if not (self.exclude and label.startswith(self.exclude)):
                rss_sum += mem.rss
                pss_sum += getattr(mem, "pss", 0)
            counts[label] = counts.get(label, 0) + 1
            key = f"{label} [{proc.pid}]"
            peak = phase["processes"].get(key, 0)
            phase["processes"][key] = max(peak, mem.rss)
        phase["peak_rss_sum"] = max(phase["peak_rss_sum"], rss_sum)
        phase["peak_pss_sum"] = max(phase["peak_pss_sum"], pss_sum)
        self.timeline.append((time.monotonic() - self.t0, rss_sum, counts))

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.sample()
            except Exception as exc:  # never kill the benchmark over a sample
                log(f"memory sample failed: {exc}")
            self._stop.wait(max(0.05, self.interval_s - (time.monotonic() - start)))

    def report(self) -> dict[str, Any]:
        """Per phase: GiB peaks, and the processes sorted by peak RSS."""
        out: dict[str, Any] = {}
        for name, p in self.phases.items():
            procs = sorted(p["processes"].items(), key=lambda kv: -kv[1])
            out[name] = {
                "peak_rss_sum_gib": round(p["peak_rss_sum"] / GIB, 3),
                "peak_pss_sum_gib": round(p["peak_pss_sum"] / GIB, 3),
                "processes": [
                    {"process": k, "peak_rss_gib": round(v / GIB, 3)} for k, v in procs
                ],
            }
        return out


def replica_counts(
    timeline: list[tuple[float, float, dict[str, int]]], prefix: str
) -> list[tuple[float, int]]:
    """(seconds, live replica processes) whose label starts with `prefix`."""
    return [
        (t, sum(n for label, n in counts.items() if label.startswith(prefix)))
        for t, _, counts in timeline
    ]
