"""Platform overhead: what Ray Serve's ingress and one DeploymentHandle hop cost.

Two measurements against a running stack (`bench.suite` adds the `hop`
application below to its stack):

1. a trivial RPC, `ModelService/ListModels` answered from memory by the same
   handler (`Handlers.ListModels`, the shared ingress layer included) in two
   places: behind Ray's ingress (HAProxy → replica, as `make serve` runs it,
   application `hop`) and in a bare `grpc.aio` server in its own process;
2. one `DeploymentHandle` hop on a text call, as the studio makes it:
   `GenerateText` sent straight to the text application, next to the same
   request sent to `hop`, whose ingress forwards it to `Text` through a handle
   (`handle.GenerateText.remote(request)`), at concurrency 1 and under load.

Run alone: ``python -m bench.hop --target HOST:PORT`` against a stack that
serves both `text` and `hop` (e.g. `python -m bench.suite --only platform`).
The measurements and their report section are `bench.platform_bench`; this
module is what runs server-side (the application, the bare server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from grpc_health.v1 import health_pb2
from ray import serve

from deployments.ingress import unary_rpc
from maestro.v1 import models_pb2, models_pb2_grpc, text_pb2

HOP_APP = "hop"
# The hop application, as bench.suite appends it to serve_config.yaml.
HOP_APP_CONFIG: dict[str, Any] = {
    "name": HOP_APP,
    "route_prefix": "/hop",
    "import_path": "bench.hop:build_app",
    "args": {"app": "text", "deployment": "Text"},
    "deployments": [
        {
            "name": "Hop",
            "max_ongoing_requests": 256,
            "max_queued_requests": 512,
            "ray_actor_options": {"num_cpus": 0},
        }
    ],
}
_MODELS = models_pb2.ListModelsResponse(
    models=[
        models_pb2.ModelInfo(
            id="bench-static",
            family=models_pb2.FAMILY_TEXT,
            engine="none (answered from memory)",
            device="cpu",
            ready=True,
            limits={"max_model_len": "2048", "default_max_tokens": "256"},
            stats={"unfinished_requests": "0", "open_streams": "0"},
        )
    ]
)


class Handlers:
    """The trivial handler, identical behind Ray and in the bare server."""

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        return _MODELS


@serve.deployment(name="Hop", ray_actor_options={"num_cpus": 0})
class HopDeployment(Handlers):
    """Ingress of application `hop`: forwards GenerateText to Text by handle."""

    def __init__(self, app: str = "text", deployment: str = "Text") -> None:
        self.text = serve.get_deployment_handle(deployment, app_name=app)

    @unary_rpc(text_pb2.GenerateTextResponse)
    async def GenerateText(
        self, request: text_pb2.GenerateTextRequest, request_id: str
    ) -> text_pb2.GenerateTextResponse:
        return await self.text.GenerateText.remote(request)

    @unary_rpc(health_pb2.HealthCheckResponse)
    async def Check(
        self, request: health_pb2.HealthCheckRequest, request_id: str
    ) -> health_pb2.HealthCheckResponse:
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING
        )


def build_app(args: dict[str, Any] | None = None) -> Any:
    return HopDeployment.bind(**(args or {}))


class BareModelService(Handlers, models_pb2_grpc.ModelServiceServicer):
    """The same handler in a plain grpcio server."""


async def serve_bare(port: int) -> None:
    import grpc

    server = grpc.aio.server()
    models_pb2_grpc.add_ModelServiceServicer_to_server(BareModelService(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="127.0.0.1:9000")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_bare:
        asyncio.run(serve_bare(args.serve_bare))
        return 0
    from bench import platform_bench

    result = {
        "list_models": platform_bench.measure_ingress(args.target, args.calls),
        "handle_hop": platform_bench.measure_handle_hop(
            args.target, [1, 32], {1: 30, 32: 256}, platform_bench.HOP_MAX_TOKENS
        ),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
