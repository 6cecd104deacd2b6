"""Servers the benchmarks start: each in a session of its own, stopped for good.

Everything a server starts (Ray's GCS and raylet, replicas, vLLM's engine
core) stays in the session it was started in, so stopping the session
reaches every child, and nothing outside it is touched (others may run
servers on this machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lib.log import log
from bench.lib.serve_config import ROOT
from maestro import envs

STOP_S = 30  # grace for a clean shutdown before SIGTERM, then SIGKILL


@dataclass
class Server:
    """A started server: its process (session leader), target and log."""

    name: str
    proc: subprocess.Popen[bytes]
    target: str
    log_path: Path
    http_port: int = 0  # a Maestro stack's HTTP port (OpenAI-compatible /v1)

    def tail(self, chars: int = 4000) -> str:
        """The end of the server's log (for an error message)."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def venv_env() -> dict[str, str]:
    """This environment with the venv's bin first on PATH, and no Ray to join."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop(envs.RAY_ADDRESS.name, None)  # always a fresh local Ray, never someone's
    return env


def spawn(
    name: str, cmd: list[str], env: dict[str, str], workdir: Path, stdout: bool = False
) -> tuple[subprocess.Popen[bytes], Path]:
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


def stop(server: Server, grace_s: float = STOP_S) -> None:
    """SIGINT the group (clean shutdown), then SIGKILL what is left of its session.

    After `grace_s` a SIGTERM follows (`serve run` stops at once on a second
    signal instead of draining its ingress replicas), then SIGKILL. Ray and
    vLLM start helpers of their own; any still in the session we created are
    ours to kill, and nothing outside it is touched.
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
    while (left := session_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in session_pids(pgid):
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


def session_pids(sid: int) -> list[int]:
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
