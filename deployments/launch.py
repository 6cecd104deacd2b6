"""`python -m deployments.launch [CONFIG]`: `serve run` with Maestro's Ray settings.

Ray Serve reads a few switches only from the environment of the processes it
starts, not from the config file. This module is the one place they are set;
`make serve`, the end-to-end tests and the benchmarks all start Maestro
through it. A variable already set in the caller's environment wins, so
`RAY_SERVE_ENABLE_HA_PROXY=0 make serve` runs Ray's Python gRPC proxy instead.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "RAY_SERVE_ENV",
    "command",
    "environment",
    "main",
    "side_by_side_environment",
]

RAY_SERVE_ENV = {
    # HAProxy on the gRPC port routes each call by its `application` key
    # straight to the ingress replica of that application, which serves gRPC
    # itself. A streamed message then costs ~0.05 ms of CPU instead of ~1 ms
    # through Ray's Python proxy actor; on 2 cores that is the difference
    # between 0.6x and ~1x vLLM's own server (bench/README.md).
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
}


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
    env.pop("RAY_ADDRESS", None)  # always a fresh local Ray, never someone's
    env.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(_free_port()))
    env.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(_free_port()))
    offset = random.randrange(0, 40) * 200
    for kind, low in (("HTTP", 32000 + offset), ("GRPC", 42000 + offset)):
        env.setdefault(f"RAY_SERVE_DIRECT_INGRESS_MIN_{kind}_PORT", str(low))
        env.setdefault(f"RAY_SERVE_DIRECT_INGRESS_MAX_{kind}_PORT", str(low + 199))
    env.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(config: str | Path) -> list[str]:
    return [str(Path(sys.executable).parent / "serve"), "run", str(config)]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = args[0] if args else "serve_config.yaml"
    cmd = command(config)
    os.execve(cmd[0], cmd, environment())


if __name__ == "__main__":
    main()
