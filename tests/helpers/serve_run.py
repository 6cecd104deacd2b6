"""`serve run` on a copy of serve_config.yaml (free ports), as a subprocess.

Every call is traced into the run's own file (a batched background write per
second, cheap enough for every e2e test), and the run is handed out only once
its families answer SERVING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployments import launch
from maestro import MaestroClient
from tests.helpers.paths import ROOT

__all__ = ["STARTUP_S", "ServeRun", "serve_run"]

STARTUP_S = 240
_PROBE_S = 5  # how often a probe round gives way to a look at the process


@dataclass(frozen=True)
class ServeRun:
    """A running stack: where to call it and what it writes where."""

    target: str
    http_port: int
    metrics_port: int
    dashboard_port: int
    config: Path
    log: Path
    spans: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text()[-chars:]


def _write_config(
    workdir: Path, edit: Callable[[dict[str, Any]], None] | None = None
) -> tuple[Path, int, int]:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    if edit is not None:
        edit(config)
    grpc_port, http_port = launch.free_port(), launch.free_port()
    config["grpc_options"]["port"] = grpc_port
    config["http_options"]["port"] = http_port
    config.setdefault("observability", {})["tracing"] = {
        "enabled": True,
        "exporter": "file",
        "file": str(workdir / "spans.jsonl"),
        "sampling_ratio": 1.0,
    }
    path = workdir / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, grpc_port, http_port


def _wait_until_serving(run: ServeRun, timeout: float, families: list[str]) -> None:
    """The client's wait, in slices, failing at once if `serve run` exits."""
    deadline = time.monotonic() + timeout
    with MaestroClient(run.target, timeout=_PROBE_S) as client:
        while True:
            if run.process.poll() is not None:
                raise RuntimeError(f"serve run exited:\n{run.log_tail()}")
            left = deadline - time.monotonic()
            try:
                client.wait_until_serving(min(_PROBE_S, max(left, 0)), families)
                return
            except TimeoutError as error:
                if left <= _PROBE_S:
                    waiting = str(error).split(": ", 1)[-1]  # "text (NOT_SERVING)"
                    raise RuntimeError(
                        f"not SERVING after {timeout:g} s: {waiting}\n{run.log_tail()}"
                    ) from None


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGINT: `serve run` tears down Serve and the Ray instance it started
    # (not other Ray instances on the machine); KILL whatever outlives it.
    # The group may be gone already (a stack that failed to start).
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        if sig == signal.SIGINT:
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass


@contextmanager
def serve_run(
    workdir: Path,
    *,
    families: Iterable[str] = ("text",),
    startup_s: float = STARTUP_S,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[ServeRun]:
    """The stack of serve_config.yaml (changed by `edit`, when given), run in
    `workdir`, once `families` serve."""
    config, grpc_port, http_port = _write_config(workdir, edit)
    env = launch.side_by_side_environment()
    log = workdir / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            launch.command(config),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = ServeRun(
        target=f"127.0.0.1:{grpc_port}",
        http_port=http_port,
        metrics_port=int(env[launch.METRICS_PORT_VAR]),
        dashboard_port=int(env[launch.DASHBOARD_PORT_VAR]),
        config=config,
        log=log,
        spans=workdir / "spans.jsonl",
        process=process,
    )
    try:
        _wait_until_serving(run, startup_s, list(families))
        yield run
    finally:
        _stop(process)
