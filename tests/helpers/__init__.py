"""Helpers the test tiers share; fixtures (in the conftests) are built on them.

paths       ROOT, DEMO and the demo checkpoints
polling     wait_for / await_for: poll a condition, fail naming what never came
devices     cuda_available (the `gpu` marker's collection hook asks it)
grpc_server in_process_server: servicers on a free port, no Ray
serve_run   ServeRun: `serve run serve_config.yaml` as a subprocess, SERVING
serve_stack this process's own local Ray + Serve, a GPU profile's shapes

Only serve_stack imports Ray (import it by its module); `free_port` is the
launcher's own.
"""

from deployments.launch import free_port
from tests.helpers.paths import DEMO, ROOT, build_demo_models
from tests.helpers.polling import await_for, wait_for

__all__ = [
    "DEMO",
    "ROOT",
    "await_for",
    "build_demo_models",
    "free_port",
    "wait_for",
]
