"""`python -m deployments.launch [CONFIG]`: `serve run` with Maestro's Ray settings.

Ray Serve reads a few switches only from the environment of the processes it
starts, not from the config file. This module is the one place they are set;
`make serve`, the end-to-end tests and the benchmarks all start Maestro
through it. A variable already set in the caller's environment wins, so
`RAY_SERVE_ENABLE_HA_PROXY=0 make serve` runs Ray's Python gRPC proxy instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["RAY_SERVE_ENV", "command", "environment", "main"]

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


def command(config: str | Path) -> list[str]:
    return [str(Path(sys.executable).parent / "serve"), "run", str(config)]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = args[0] if args else "serve_config.yaml"
    cmd = command(config)
    os.execve(cmd[0], cmd, environment())


if __name__ == "__main__":
    main()
