"""Readiness probes, and the one loop that waits on them."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Sequence

from bench.lib.procs import Server

STARTUP_S = 240

Probe = Callable[[str], bool]


def wait_until_serving(
    server: Server, ready: Probe, timeout_s: float = STARTUP_S
) -> float:
    """Seconds until `ready(server.target)`; fails with the log tail if it dies."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.tail()}")
        if ready(server.target):
            return time.monotonic() - start
        time.sleep(1)
    raise RuntimeError(f"{server.name} not ready in {timeout_s} s:\n{server.tail()}")


def family_serving(family: str) -> Probe:
    """A probe: the family's `Health/Check` answers SERVING."""

    def ready(target: str) -> bool:
        from grpc_health.v1 import health_pb2

        from maestro import MaestroClient, MaestroRpcError

        with MaestroClient(target, timeout=5) as client:
            try:
                return client.health(family) == health_pb2.HealthCheckResponse.SERVING
            except MaestroRpcError:
                return False

    return ready


def all_serving(families: Sequence[str]) -> Probe:
    """A probe: every family in `families` answers SERVING."""
    probes = [family_serving(f) for f in families]
    return lambda target: all(p(target) for p in probes)


def http_ok(path: str) -> Probe:
    """A probe: `GET http://<target><path>` answers 200 (vLLM: `/v1/models`)."""

    def ready(target: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{target}{path}", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return ready


def alive(server: Server, ready: Probe) -> bool:
    """The process is up and its readiness probe still answers."""
    return server.proc.poll() is None and ready(server.target)
