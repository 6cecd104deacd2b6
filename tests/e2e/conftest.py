"""`serve run` on a copy of serve_config.yaml (free ports), as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from grpc_health.v1 import health_pb2

from deployments import launch
from maestro import MaestroClient, MaestroRpcError
from tests.conftest import ROOT, free_port

STARTUP_S = 240
# What the session stack wrote where (test_observability_e2e reads it).
STACK: dict[str, Path | int] = {}


@pytest.fixture(scope="session")
def server(
    demo_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real stack of serve_config.yaml; yields its gRPC target."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = free_port()
    config["grpc_options"]["port"] = port
    config["http_options"]["port"] = free_port()
    path = tmp_path_factory.mktemp("serve") / "serve_config.yaml"
    # Every call traced into this session's own file: a batched background
    # write per second, cheap enough for every e2e test.
    spans = path.parent / "spans.jsonl"
    config.setdefault("observability", {})["tracing"] = {
        "enabled": True,
        "exporter": "file",
        "file": str(spans),
        "sampling_ratio": 1.0,
    }
    path.write_text(yaml.safe_dump(config))
    log = (path.parent / "serve.log").open("w")
    env = launch.side_by_side_environment()
    STACK.update(
        spans=spans,
        log=path.parent / "serve.log",
        metrics_port=int(env[launch.METRICS_PORT_VAR]),
        dashboard_port=int(env[launch.DASHBOARD_PORT_VAR]),
    )
    proc = subprocess.Popen(
        launch.command(path),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    target = f"127.0.0.1:{port}"
    try:
        _wait_until_serving(target, proc, path.parent / "serve.log")
        yield target
    finally:
        # SIGINT: `serve run` tears down Serve and the Ray instance it started
        # (not other Ray instances on the machine); KILL whatever outlives it.
        # The group may be gone already (a stack that failed to start).
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            if sig == signal.SIGINT:
                try:
                    proc.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    pass


def _wait_until_serving(target: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    with MaestroClient(target, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve run exited:\n{log.read_text()[-4000:]}")
            try:
                if client.health("text") == health_pb2.HealthCheckResponse.SERVING:
                    return
            except MaestroRpcError:
                pass
            time.sleep(1)
    raise RuntimeError(
        f"text not SERVING after {STARTUP_S} s:\n{log.read_text()[-4000:]}"
    )


@pytest.fixture
def client(server: str) -> Iterator[MaestroClient]:
    with MaestroClient(server, timeout=60) as c:
        yield c
