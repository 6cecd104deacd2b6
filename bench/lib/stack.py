"""A Maestro stack for the benchmarks: `serve run` on an edited serve_config.yaml.

`stack(...)` starts `serve run` (through `deployments.launch`, HAProxy ingress,
free ports) on a copy of the caller's config and stops it on exit whatever
happens (Ctrl-C included). Every process of the stack lives in the session
`serve run` was started in, so `bench.lib.memory.MemorySampler` finds them
all (Ray's GCS and raylet, HAProxy, the controller, each replica, vLLM's
engine core) and so does the clean-up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.lib.log import log
from bench.lib.probes import all_serving, wait_until_serving
from bench.lib.procs import Server, spawn, stop, venv_env
from bench.lib.serve_config import on_free_ports
from deployments import launch

# Measurements are over when a stack stops: no need for Ray's ingress drain.
STOP_GRACE_S = 5.0


def start_stack(
    config: dict[str, Any],
    workdir: Path,
    name: str = "maestro",
    env: dict[str, str] | None = None,
    log_name: str | None = None,
) -> Server:
    """`serve run` on `config` with free ports; not waited on.

    The server's `name` is what `bench.loadgen` calls the backend; its log is
    `<log_name or name>.log` in `workdir`.
    """
    config, port = on_free_ports(config)
    label = log_name or name
    path = workdir / f"{label}-serve_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_env = launch.side_by_side_environment({**venv_env(), **(env or {})})
    proc, log_path = spawn(label, launch.command(path), run_env, workdir)
    http_port = config["http_options"]["port"]
    return Server(name, proc, f"127.0.0.1:{port}", log_path, http_port)


@contextmanager
def stack(
    config: dict[str, Any],
    workdir: Path,
    name: str = "maestro",
    families: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    *,
    log_name: str | None = None,
    stop_grace_s: float = STOP_GRACE_S,
) -> Iterator[Server]:
    """`serve run` on `config` (ports replaced by free ones), ready, then stopped.

    Ready means every family in `families` (default: every application) says
    SERVING.
    """
    server = start_stack(config, workdir, name, env, log_name)
    families = list(families or [a["name"] for a in config["applications"]])
    log(f"{name}: starting {', '.join(families)}")
    try:
        took = wait_until_serving(server, all_serving(families))
        log(f"{name}: ready on {server.target} in {took:.0f} s")
        yield server
    finally:
        log(f"{name}: stopping")
        stop(server, grace_s=stop_grace_s)
