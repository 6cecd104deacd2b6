"""A Serve stack for scheduling tests: own local Ray, a profile's shapes, demo models.

The GPU profiles (serve_config.gpu*.yaml) are deployed here with their real
`ray_actor_options` and autoscaling settings, but with every engine's `args`
taken from the CPU demo config (serve_config.yaml): Ray is started with
*logical* GPUs, so the scheduling is real while the demo checkpoints run on
the CPU. The configs go through the same path as `serve run`: the
application builders named by `import_path`, deployed declaratively.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import ray
import yaml
from ray import serve
from ray.serve.config import gRPCOptions
from ray.serve.schema import ServeDeploySchema

from deployments.launch import free_port
from tests.helpers.paths import ROOT

__all__ = [
    "FAST_WARNINGS",
    "demo_profile",
    "deploy",
    "local_serve",
    "replica_counts",
]

# Ray names the missing resources of a replica that waits this long (30 s by
# default); the controller reads these when it starts.
FAST_WARNINGS = {
    "RAY_SERVE_SLOW_STARTUP_WARNING_S": "1",
    "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "1",
}
_TEXT_SHAPE = "tests.serve.shapes:build_text_shape"


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def demo_profile(
    profile: str,
    apps: list[str],
    *,
    text_shape: bool = True,
) -> list[dict[str, Any]]:
    """`apps` of `profile` with the CPU demo's engine args, resources kept.

    `text_shape`: the text application runs `tests.serve.shapes.TextShape`
    (the text deployment's name and resource shape, no vLLM), so a scheduling
    test does not spend half a minute of the two cores starting vLLM.
    """
    demo = {a["name"]: a for a in _load("serve_config.yaml")["applications"]}
    chosen = []
    for app in _load(profile)["applications"]:
        if app["name"] not in apps:
            continue
        app = copy.deepcopy(app)
        app["args"] = copy.deepcopy(demo[app["name"]]["args"])
        if app["name"] == "text" and text_shape:
            app["import_path"], app["args"] = _TEXT_SHAPE, {}
        chosen.append(app)
    return chosen


@contextmanager
def local_serve(
    *,
    num_cpus: int,
    num_gpus: int,
    env: Mapping[str, str] = FAST_WARNINGS,
    http_port: int | None = None,
) -> Iterator[str]:
    """This test's own local Ray + Serve (gRPC on a free port, HTTP on
    `http_port` or a free one); yields the gRPC target."""
    grpc_config = _load("serve_config.yaml")["grpc_options"]
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    port = free_port()
    try:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
        )
        serve.start(
            http_options={"host": "127.0.0.1", "port": http_port or free_port()},
            grpc_options=gRPCOptions(
                port=port,
                grpc_servicer_functions=grpc_config["grpc_servicer_functions"],
            ),
        )
        yield f"127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def deploy(applications: list[dict[str, Any]]) -> None:
    """Declaratively deploy `applications` (what `serve deploy` does)."""
    from ray.serve.context import _get_global_client

    schema = ServeDeploySchema.model_validate({"applications": applications})
    _get_global_client().deploy_apps(schema)


def replica_counts(app: str) -> dict[str, int]:
    """{replica state: count} of the application's (single) deployment."""
    status = serve.status().applications.get(app)
    if status is None or not status.deployments:  # not deployed (yet)
        return {}
    (deployment,) = status.deployments.values()
    return {
        str(getattr(state, "value", state)): count
        for state, count in (deployment.replica_states or {}).items()
    }
