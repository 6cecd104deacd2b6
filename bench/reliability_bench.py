"""Reliability benchmark: overload and faults on one Maestro stack (CPU demo).

    .venv/bin/python -m bench.reliability_bench [--quick] [--repeats N] [--out DIR]

One stack (`bench.lib.stack`: serve_config.yaml's text, image and voice
applications as they are, free ports) and, on it, one after the other:

1. **Overload.** Per family (image, then voice): 10 x what its deployment
   admits (`max_ongoing_requests + max_queued_requests`, read from the
   config) offered at once through `AsyncMaestroClient` (`retry=None`; image
   64x64, 1 step, seeded; voice a short seeded `Synthesize`). Reported: the
   calls answered per code, p50/p99 latency of the served calls and of the
   refusals (RESOURCE_EXHAUSTED), the replica id (ListModels
   `stats["replica"]`) before and after (not restarted), the replica
   process's RSS idle before vs its peak during the storm (psutil, every
   0.1 s, in a thread), and one call's latency before vs right after.
2. **Faults** (SIGKILL, as an OOM killer would), each while a background
   loop starts a call every 0.2 s (open loop: one that hangs does not hold
   up the next; 5 s deadline, `retry=None`) and the main thread asks Health
   every 0.1 s:
   a. the voice replica (`ServeReplica:voice:Voice`) killed mid `StreamSpeech`:
      the code the stream got, kill -> Health SERVING again, calls meanwhile
      by code;
   b. vLLM's engine core (`VLLM::EngineCore`) under the text replica: kill ->
      Health NOT_SERVING, kill -> SERVING again (replica replaced), calls
      meanwhile by code.

Processes are found among the stack's own descendants (never another stack
on the machine). `--quick`: one repeat of everything; default three, the
report shows each run and the medians. Prints the Markdown report (stdout)
and writes `bench/results/reliability-<UTC stamp>.md` and `.json`. The stack
is stopped on the way out whatever happens (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.markdown import fmt
from bench.lib.procs import Server, session_pids
from bench.lib.serve_config import ROOT, app_config, base_config, only_apps
from bench.lib.stack import stack

FAMILIES = ("text", "image", "voice")
STORM_FAMILIES = ("image", "voice")
OVERLOAD_FACTOR = 10
TITLES = {
    "image": "ServeReplica:image:Image",
    "voice": "ServeReplica:voice:Voice",
    "text": "ServeReplica:text:Text",
    "engine": "VLLM::EngineCore",
}
RSS_EVERY_S = 0.1
IDLE_S = 2.0  # RSS sampled this long before a storm
CALL_EVERY_S = 0.2  # the background loop's pace during a fault
CALL_TIMEOUT_S = 5.0
HEALTH_EVERY_S = 0.1
HEALTH_TIMEOUT_S = 2.0
DOWN_WAIT_S = 20.0  # a kill not seen by Health in this long: reported as such
RECOVER_S = 300.0
BASELINE_S = 1.0  # background calls before each kill
AFTER_SERVING_S = 10.0  # background calls go on until an OK, at most this long
LONG_SPEECH = " ".join(f"Sentence number {i} of a long story." for i in range(50))
MIB = 1024**2


# -- helpers ---------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def admitted(config: dict[str, Any], app: str) -> int:
    """max_ongoing_requests + max_queued_requests of the app's deployment."""
    (deployment,) = app_config(config, app)["deployments"]
    return int(deployment["max_ongoing_requests"]) + int(
        deployment["max_queued_requests"]
    )


def stack_processes(server: Server) -> Iterator[psutil.Process]:
    """The stack's descendants, then anything else left in its session."""
    seen: set[int] = set()
    try:
        children = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for proc in children:
        seen.add(proc.pid)
        yield proc
    for pid in session_pids(server.proc.pid):
        if pid not in seen:
            try:
                yield psutil.Process(pid)
            except psutil.Error:
                continue


def find_processes(server: Server, title: str) -> list[psutil.Process]:
    """Live stack processes whose title (cmdline or name) holds `title`."""
    found = []
    for proc in stack_processes(server):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if title in " ".join(proc.cmdline()) or title == proc.name():
                found.append(proc)
        except psutil.Error:
            continue
    return found


def find_process(server: Server, title: str) -> psutil.Process:
    procs = find_processes(server, title)
    if not procs:
        raise RuntimeError(f"no process titled {title!r} under the stack")
    if len(procs) > 1:
        log(f"{len(procs)} processes titled {title!r}; using pid {procs[0].pid}")
    return procs[0]


def code_of(error: BaseException) -> str:
    from maestro import MaestroRpcError

    if isinstance(error, MaestroRpcError):
        return str(error.code.name)
    return type(error).__name__


def replica_id(client: Any, family: str) -> str | None:
    try:
        (model,) = client.list_models([family])
    except Exception as error:
        log(f"ListModels {family}: {code_of(error)}")
        return None
    return model.stats.get("replica")


class PeakRss:
    """Samples one process's RSS every `every_s` in a thread: peak and mean."""

    def __init__(self, proc: psutil.Process, every_s: float = RSS_EVERY_S) -> None:
        self.proc, self.every_s = proc, every_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.every_s)

    @property
    def peak_mib(self) -> float | None:
        return round(max(self.samples) / MIB, 1) if self.samples else None


# -- overload --------------------------------------------------------------


@dataclass
class StormRun:
    """One storm on one family."""

    family: str
    offered: int
    admitted: int
    codes: dict[str, int]
    ok_p50_s: float | None
    ok_p99_s: float | None
    refused_p50_s: float | None
    refused_p99_s: float | None
    storm_s: float
    replica_before: str | None
    replica_after: str | None
    rss_idle_mib: float | None
    rss_peak_mib: float | None
    rss_samples: int
    call_before_s: float | None
    call_before_code: str
    call_after_s: float | None
    call_after_code: str

    @property
    def ok(self) -> int:
        return self.codes.get("OK", 0)

    @property
    def refused(self) -> int:
        return self.codes.get("RESOURCE_EXHAUSTED", 0)

    @property
    def other(self) -> dict[str, int]:
        return {
            c: n for c, n in self.codes.items() if c not in ("OK", "RESOURCE_EXHAUSTED")
        }

    @property
    def replica_kept(self) -> bool:
        return self.replica_before is not None and (
            self.replica_before == self.replica_after
        )


def _storm_call(client: Any, family: str, i: int) -> Awaitable[Any]:
    if family == "image":
        return client.generate_image(f"storm {i}", width=64, height=64, steps=1, seed=i)
    return client.synthesize(f"Storm call number {i}.", seed=i)


def _answered(family: str, reply: Any) -> bool:
    if family == "image":
        return bool(reply.images and reply.images[0].data)
    return bool(reply.audio)


async def _storm(server: Server, family: str, offered: int, limit: int) -> StormRun:
    from maestro import AsyncMaestroClient, MaestroClient

    with MaestroClient(server.target, timeout=30, retry=None) as sync:
        before = replica_id(sync, family)
    proc = find_process(server, TITLES[family])

    async with AsyncMaestroClient(server.target, timeout=120, retry=None) as client:

        async def one(i: int) -> tuple[str, float]:
            began = time.monotonic()
            try:
                reply = await _storm_call(client, family, i)
                code = "OK" if _answered(family, reply) else "EMPTY"
            except Exception as error:
                code = code_of(error)
            return code, time.monotonic() - began

        await one(offered)  # warm
        before_code, call_before = await one(offered + 1)
        with PeakRss(proc) as idle:
            await asyncio.sleep(IDLE_S)
        log(f"overload {family}: {offered} calls at once (admits {limit})")
        began = time.monotonic()
        with PeakRss(proc) as during:
            results = await asyncio.gather(*(one(i) for i in range(offered)))
        storm_s = time.monotonic() - began
        after_code, call_after = await one(offered + 2)
    with MaestroClient(server.target, timeout=30, retry=None) as sync:
        after = replica_id(sync, family)
    ok = [s for c, s in results if c == "OK"]
    refused = [s for c, s in results if c == "RESOURCE_EXHAUSTED"]
    run = StormRun(
        family=family,
        offered=offered,
        admitted=limit,
        codes=dict(Counter(c for c, _ in results).most_common()),
        ok_p50_s=percentile(ok, 50),
        ok_p99_s=percentile(ok, 99),
        refused_p50_s=percentile(refused, 50),
        refused_p99_s=percentile(refused, 99),
        storm_s=storm_s,
        replica_before=before,
        replica_after=after,
        rss_idle_mib=idle.peak_mib,
        rss_peak_mib=during.peak_mib,
        rss_samples=len(during.samples),
        call_before_s=call_before if before_code == "OK" else None,
        call_before_code=before_code,
        call_after_s=call_after if after_code == "OK" else None,
        call_after_code=after_code,
    )
    log(
        f"overload {family}: {run.codes} in {storm_s:.1f} s; replica "
        f"{'kept' if run.replica_kept else 'CHANGED'}"
    )
    return run


def overload(server: Server, family: str, limit: int) -> StormRun:
    return asyncio.run(_storm(server, family, OVERLOAD_FACTOR * limit, limit))


# -- faults ----------------------------------------------------------------


class Caller:
    """Starts `call()` every `every_s` (open loop: a slow call does not delay
    the next one); keeps (start, code, seconds) of each call."""

    def __init__(self, call: Callable[[], Any], every_s: float = CALL_EVERY_S) -> None:
        self.call, self.every_s = call, every_s
        self.calls: list[tuple[float, str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=int(CALL_TIMEOUT_S / every_s) + 8,
            thread_name_prefix="caller",
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Caller:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No new calls; wait for those in flight (each has a deadline)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True)

    def _one(self) -> None:
        began = time.monotonic()
        try:
            self.call()
            code = "OK"
        except Exception as error:
            code = code_of(error)
        with self._lock:
            self.calls.append((began, code, time.monotonic() - began))

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            next_at += self.every_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def first_ok_after(self, t: float) -> float | None:
        """When the first OK answer after `t` arrived (monotonic), else None."""
        with self._lock:
            done = [b + d for b, c, d in self.calls if c == "OK" and b + d >= t]
        return min(done) if done else None

    def snapshot(self) -> list[tuple[float, str, float]]:
        with self._lock:
            return sorted(self.calls)


@dataclass
class FaultRun:
    """One kill: what the clients saw until the family served again."""

    family: str
    killed: str  # the process title
    stream_code: str | None  # voice: what the live stream got
    stream_error_s: float | None  # kill -> the stream's error
    down_s: float | None  # kill -> first Health answer that is not SERVING
    not_serving_s: float | None  # kill -> first Health NOT_SERVING status
    serving_s: float | None  # kill -> Health SERVING again
    first_ok_s: float | None  # kill -> the first OK answer of a background call
    calls: dict[str, int]  # background calls started from kill to SERVING
    slowest_failure_s: float | None  # longest a failed call took to fail
    health: list[tuple[float, str]]  # Health answers as they changed
    replica_before: str | None
    replica_after: str | None
    baseline: dict[str, int] = field(default_factory=dict)  # calls before the kill


def _health_answer(client: Any, family: str) -> str:
    from grpc_health.v1 import health_pb2

    try:
        status = client.health(family)
    except Exception as error:
        return code_of(error)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(status))


def _watch_health(
    client: Any, family: str, killed_at: float
) -> tuple[list[tuple[float, str]], float | None, float | None, float | None]:
    """Health answers from the kill until SERVING again after being down."""
    changes: list[tuple[float, str]] = []
    down = not_serving = serving = None
    while True:
        now = time.monotonic() - killed_at
        answer = _health_answer(client, family)
        if not changes or changes[-1][1] != answer:
            changes.append((round(now, 2), answer))
        if answer != "SERVING" and down is None:
            down = now
        if answer == "NOT_SERVING" and not_serving is None:
            not_serving = now
        if answer == "SERVING" and down is not None:
            serving = now
            break
        if down is None and now > DOWN_WAIT_S:
            log(f"fault {family}: Health still SERVING {DOWN_WAIT_S:.0f} s after kill")
            break
        if now > RECOVER_S:
            log(f"fault {family}: not SERVING again in {RECOVER_S:.0f} s")
            break
        time.sleep(HEALTH_EVERY_S)
    return changes, down, not_serving, serving


def _kill(
    family: str,
    title: str,
    proc: psutil.Process,
    caller: Caller,
    health_c: Any,
    stream_c: Any,
) -> tuple[
    float,
    list[tuple[float, str]],
    float | None,
    float | None,
    float | None,
    dict[str, Any],
]:
    """Baseline calls, (voice: open a stream), SIGKILL, watch until SERVING."""
    time.sleep(BASELINE_S)
    stream_result: dict[str, Any] = {}
    consumer = None
    if family == "voice":
        stream = stream_c.stream_speech(LONG_SPEECH, seed=3)
        next(stream)  # the stream is live on that replica

        def consume() -> None:
            try:
                for _ in stream:
                    pass
                stream_result["code"] = "OK (finished)"
            except Exception as error:
                stream_result["code"] = code_of(error)
            stream_result["at"] = time.monotonic()

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()

    log(f"fault {family}: SIGKILL {title} (pid {proc.pid})")
    proc.kill()
    killed_at = time.monotonic()
    changes, down, not_serving, serving = _watch_health(health_c, family, killed_at)
    if consumer is not None:
        consumer.join(timeout=60)
    since = killed_at + (serving or 0.0)
    until = time.monotonic() + AFTER_SERVING_S
    while caller.first_ok_after(since) is None and time.monotonic() < until:
        time.sleep(0.1)
    return killed_at, changes, down, not_serving, serving, stream_result


def fault(server: Server, family: str, title: str) -> FaultRun:
    """SIGKILL the process titled `title`; watch Health and a call loop."""
    from maestro import MaestroClient

    with (
        MaestroClient(server.target, timeout=CALL_TIMEOUT_S, retry=None) as caller_c,
        MaestroClient(server.target, timeout=HEALTH_TIMEOUT_S, retry=None) as health_c,
        MaestroClient(server.target, timeout=120, retry=None) as stream_c,
    ):
        replica_before = replica_id(health_c, family)
        if family == "voice":
            call: Callable[[], Any] = lambda: caller_c.synthesize(  # noqa: E731
                "back again.", seed=1
            )
        else:
            call = lambda: caller_c.generate_text(  # noqa: E731
                "still there?", max_tokens=2
            )
        proc = find_process(server, title)
        caller = Caller(call).start()
        try:
            killed_at, changes, down, not_serving, serving, stream_result = _kill(
                family, title, proc, caller, health_c, stream_c
            )
        finally:
            caller.stop()
        if serving is not None:
            # The stack serves everything again before the next measurement.
            health_c.wait_until_serving(RECOVER_S, FAMILIES)
        replica_after = replica_id(health_c, family)

    end = killed_at + (serving if serving is not None else RECOVER_S)
    meanwhile = [(b, c, s) for b, c, s in caller.calls if killed_at <= b <= end]
    failures = [s for _, c, s in meanwhile if c != "OK"]
    first_ok = caller.first_ok_after(killed_at)
    run = FaultRun(
        family=family,
        killed=title,
        stream_code=stream_result.get("code"),
        stream_error_s=(stream_result["at"] - killed_at)
        if "at" in stream_result
        else None,
        down_s=down,
        not_serving_s=not_serving,
        serving_s=serving,
        first_ok_s=(first_ok - killed_at) if first_ok is not None else None,
        calls=dict(Counter(c for _, c, _ in meanwhile).most_common()),
        slowest_failure_s=max(failures) if failures else None,
        health=changes,
        replica_before=replica_before,
        replica_after=replica_after,
        baseline=dict(
            Counter(c for b, c, _ in caller.calls if b < killed_at).most_common()
        ),
    )
    log(
        f"fault {family}: SERVING after {fmt(serving, 1)} s; calls meanwhile "
        f"{run.calls}; health {' -> '.join(a for _, a in changes)}"
    )
    return run


# -- report ----------------------------------------------------------------


@dataclass
class ReliabilityResult:
    repeats: int
    admitted: dict[str, int]
    startup_s: float
    storms: list[StormRun]
    faults: list[FaultRun]
    errors: list[str]
    seconds: float = 0.0


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


def document(
    result: ReliabilityResult, stamp: str, quick: bool, info: dict[str, Any]
) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "quick": quick,
        "machine": info,
        **dataclasses.asdict(result),
        "medians": {
            "overload": {
                f: {
                    k: median([getattr(r, k) for r in result.storms if r.family == f])
                    for k in (
                        "ok",
                        "refused",
                        "ok_p50_s",
                        "ok_p99_s",
                        "refused_p50_s",
                        "refused_p99_s",
                        "storm_s",
                        "rss_idle_mib",
                        "rss_peak_mib",
                        "call_before_s",
                        "call_after_s",
                    )
                }
                for f in STORM_FAMILIES
            },
            "faults": {
                f: {
                    k: median([getattr(r, k) for r in result.faults if r.family == f])
                    for k in (
                        "stream_error_s",
                        "down_s",
                        "not_serving_s",
                        "serving_s",
                        "first_ok_s",
                        "slowest_failure_s",
                    )
                }
                for f in ("voice", "text")
            },
        },
    }


# -- main ------------------------------------------------------------------


def measure(server: Server, result: ReliabilityResult) -> None:
    """Every storm, then every fault; a failed one is noted and the rest run."""

    def attempt(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as error:
            log(f"{what} failed: {error!r}")
            result.errors.append(f"{what}: {error!r}")
            return None

    for i in range(result.repeats):
        for family in STORM_FAMILIES:
            limit = result.admitted[family]
            run = attempt(
                f"overload {family} #{i + 1}",
                lambda f=family, n=limit: overload(server, f, n),
            )
            if run is not None:
                result.storms.append(run)
    for family, title in (("voice", TITLES["voice"]), ("text", TITLES["engine"])):
        for i in range(result.repeats):
            run = attempt(
                f"fault {family} #{i + 1}",
                lambda f=family, t=title: fault(server, f, t),
            )
            if run is not None:
                result.faults.append(run)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one repeat (default 3)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the stack is stopped either way.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    repeats = args.repeats or (1 if args.quick else 3)
    config = only_apps(base_config(), set(FAMILIES))
    result = ReliabilityResult(
        repeats=repeats,
        admitted={f: admitted(config, f) for f in FAMILIES},
        startup_s=0.0,
        storms=[],
        faults=[],
        errors=[],
    )
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="maestro-reliability-"))
    try:
        with stack(config, workdir, "maestro", FAMILIES) as server:
            result.startup_s = time.monotonic() - began
            measure(server, result)
    except BaseException:
        log(f"stopped early; server logs kept in {workdir}")
        raise
    result.seconds = time.monotonic() - began
    stamp = utc_stamp()
    info = machine()
    page = markdown(result, stamp, info)
    print(page)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"reliability-{stamp}.md").write_text(page)
    (args.out / f"reliability-{stamp}.json").write_text(
        json.dumps(document(result, stamp, args.quick, info), indent=2, default=str)
        + "\n"
    )
    log(f"reliability: report in {args.out / f'reliability-{stamp}.md'}")
    log(f"server logs in {workdir}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
