"""`python -m deployments.launch [CONFIG]`: `serve run` with Maestro's Ray settings.

Ray Serve reads a few switches only from the environment of the processes it
starts, not from the config file. This module is the one place they are set;
`make serve`, the end-to-end tests and the benchmarks all start Maestro
through it. A variable already set in the caller's environment wins, so
`RAY_SERVE_ENABLE_HA_PROXY=0 make serve` runs Ray's Python gRPC proxy instead.

Observability is declared in the config's `observability:` block (Ray ignores
that key): the started process derives Ray's tracing variables from it before
importing Ray, then starts Ray itself with the fixed metrics export port and
the dashboard on 127.0.0.1, and hands over to `serve run` (which reuses that
Ray instance). MAESTRO_METRICS_EXPORT_PORT / MAESTRO_DASHBOARD_PORT override
the two ports for a second stack beside the first (`side_by_side_environment`).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from deployments.processes import PortsTaken, check_ports_free, stop_haproxy
from maestro import envs

__all__ = [
    "RAY_SERVE_ENV",
    "command",
    "serve_run",
    "environment",
    "free_port",
    "main",
    "side_by_side_environment",
]

# Ray Serve switches Maestro sets for every stack (declared, with why, in
# maestro.envs): HAProxy on the gRPC port makes a streamed message cost
# ~0.05 ms of CPU instead of ~1 ms through Ray's Python proxy actor; on 2
# cores that is the difference between 0.6x and ~1x vLLM's own server.
RAY_SERVE_ENV = {
    envs.RAY_SERVE_ENABLE_HA_PROXY.name: str(envs.RAY_SERVE_ENABLE_HA_PROXY.default),
    # Calls naming a model go to the replica that holds it (deployments.routing).
    envs.RAY_SERVE_HAPROXY_BALANCE_ALGORITHM.name: str(
        envs.RAY_SERVE_HAPROXY_BALANCE_ALGORITHM.default
    ),
    # Maestro's request size limit (Ray's default accepts 2 GiB messages).
    envs.RAY_SERVE_GRPC_MAX_MESSAGE_SIZE.name: str(
        envs.RAY_SERVE_GRPC_MAX_MESSAGE_SIZE.default
    ),
}
# Not set, measured (issue 15): Ray's RAY_worker_niceness (15 for every
# replica, vLLM's engine core and HAProxy) at 0 streamed 0.78x the tokens
# (median of 5 alternating pairs, 4 lost;
# bench/reports/lever-worker-niceness-20261203T142525Z.md); and
# RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0 0.93x
# (bench/reports/lever-user-code-thread-20261202T173400Z.md). Ray's defaults stay.
METRICS_PORT_VAR = envs.MAESTRO_METRICS_EXPORT_PORT.name
DASHBOARD_PORT_VAR = envs.MAESTRO_DASHBOARD_PORT.name


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for `serve run`: Maestro's defaults under the caller's."""
    base = os.environ if base is None else base
    bin_dir = str(Path(sys.executable).parent)
    env = {**RAY_SERVE_ENV, **base}
    env["PATH"] = os.pathsep.join([bin_dir, base.get("PATH", "")])
    return env


def side_by_side_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environment()` for a second Maestro on a machine that may run one already.

    Tests and benchmarks start their own stack beside a developer's `make
    serve`. HAProxy's stats and metrics listeners default to fixed ports
    (8404, 9101), and each Ray instance hands out replica ports from the same
    ranges without looking at the others, so a second stack would collide or,
    worse, reach the first one's replicas. This picks free listener ports and
    a random slice of the replica port ranges, and lets ingress replicas stop
    without the 30 s drain a production rollout wants.
    """
    env = environment(base)
    env.pop(envs.RAY_ADDRESS.name, None)  # always a fresh local Ray
    env.setdefault(envs.RAY_SERVE_HAPROXY_METRICS_PORT.name, str(free_port()))
    env.setdefault(envs.RAY_SERVE_HAPROXY_STATS_PORT.name, str(free_port()))
    offset = random.randrange(_INGRESS_SLICES) * 100
    ranges = envs.RAY_SERVE_DIRECT_INGRESS_PORT_RANGES
    for kind, low in (("HTTP", 24000 + offset), ("GRPC", 28000 + offset)):
        env.setdefault(ranges[kind, "MIN"].name, str(low))
        env.setdefault(ranges[kind, "MAX"].name, str(low + 99))
    env.setdefault(envs.RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S.name, "2")
    env.setdefault(METRICS_PORT_VAR, str(free_port()))
    env.setdefault(DASHBOARD_PORT_VAR, str(free_port()))
    return env


# Ports a side-by-side stack listens on come from below Linux's ephemeral
# range (32768-60999 by default) and above Ray's worker ports (10002-19999):
# a port taken from the ephemeral range can be grabbed a moment later as the
# local end of one of the many connections Ray opens while it starts, and
# HAProxy then fails to bind it ("Address already in use").
_LISTEN_PORTS = range(20000, 24000)
_INGRESS_SLICES = 40  # replica port slices of 100: HTTP 24000.., gRPC 28000..


def free_port() -> int:
    """A port nobody listens on now, outside the ephemeral range."""
    for port in random.sample(_LISTEN_PORTS, 64):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_LISTEN_PORTS}")


def command(config: str | Path) -> list[str]:
    """`serve run CONFIG` with Maestro's observability (run it in `environment()`)."""
    return [sys.executable, "-m", "deployments.launch", "--serve-run", str(config)]


def serve_run(config: str | Path) -> None:
    """Derive Ray's settings from CONFIG, start Ray, then `serve run CONFIG`."""
    from observability.config import load, tracing_environment

    settings = load(config)
    _export_auth(config)
    for key, value in RAY_SERVE_ENV.items():  # when started without environment()
        os.environ.setdefault(key, value)
    # Before Ray is imported: Ray reads these at import, in this process and
    # in every proxy and replica it starts (they inherit the environment).
    os.environ.update(tracing_environment(settings.tracing))
    metrics_port = (
        envs.MAESTRO_METRICS_EXPORT_PORT.get() or settings.metrics_export_port
    )
    dashboard_port = envs.MAESTRO_DASHBOARD_PORT.get() or settings.dashboard_port

    raw = yaml.safe_load(Path(config).read_text()) or {}
    ports = {
        "gRPC": int((raw.get("grpc_options") or {}).get("port", 9000)),
        "HTTP": int((raw.get("http_options") or {}).get("port", 8000)),
        "metrics export": int(metrics_port),
        "dashboard": int(dashboard_port),
    }
    try:
        for note in check_ports_free(ports):
            print(f"maestro: {note}", file=sys.stderr)
    except PortsTaken as exc:
        sys.exit(f"maestro: {exc}")

    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE
    from ray.serve.scripts import cli

    ray.init(
        namespace=SERVE_NAMESPACE,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard_port,
        _metrics_export_port=metrics_port,
    )
    node_id = ray.get_runtime_context().get_node_id()
    # SIGTERM (a process manager, `kill`) stops at once but still runs the
    # clean-up below; SIGINT (Ctrl-C) drains through `serve run` first.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        cli.main(["run", str(config)], prog_name="serve")
    finally:
        ray.shutdown()
        # HAProxy is reloaded (a new process, -sf the old) while Serve tears
        # applications down; the last one can outlive Ray and keep the port.
        if left := stop_haproxy(node_id):
            print(f"maestro: stopped {left} HAProxy process(es)", file=sys.stderr)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _export_auth(config: str | Path) -> None:
    """Resolve the `auth:` block (creating the local key) for every replica."""
    from deployments.auth.config import load_auth
    from deployments.auth.keys import resolve_settings

    auth = resolve_settings(load_auth(config), Path(config).resolve().parent)
    envs.set_for_children(envs.MAESTRO_AUTH, auth.to_env())
    if not auth.enabled:
        print("maestro: auth is OFF (auth.enabled: false)", file=sys.stderr)
        return
    where = (
        envs.MAESTRO_API_KEY.name
        if envs.MAESTRO_API_KEY.is_set()
        else envs.MAESTRO_API_KEY_FILE.get()
    )
    names = ", ".join(key.name for key in auth.keys) or "none"
    print(f"maestro: auth on; keys: {names}; local key: {where}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve-run"]:
        serve_run(args[1])
        return
    config = args[0] if args else "serve_config.yaml"
    cmd = command(config)
    os.execve(cmd[0], cmd, environment())


if __name__ == "__main__":
    main()
