"""Faults: SIGKILL a stack process while calls and Health go on."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psutil

from bench.lib.log import log
from bench.lib.markdown import fmt
from bench.lib.procs import Server
from bench.reliability.calls import Caller, code_of, replica_id
from bench.reliability.processes import find_process
from bench.reliability.results import FaultRun
from bench.reliability.settings import (
    AFTER_SERVING_S,
    BASELINE_S,
    CALL_TIMEOUT_S,
    DOWN_WAIT_S,
    FAMILIES,
    HEALTH_EVERY_S,
    HEALTH_TIMEOUT_S,
    LONG_SPEECH,
    RECOVER_S,
)


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
