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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from grpc_health.v1 import health_pb2
from ray import serve

from deployments.ingress import unary_rpc
from maestro.v1 import models_pb2, models_pb2_grpc, text_pb2

ROOT = Path(__file__).resolve().parent.parent
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


# --- measurements -------------------------------------------------------------------


def _stats(latencies: list[float], wall: float) -> dict[str, Any]:
    ms = np.array(latencies) * 1000.0
    return {
        "calls": len(latencies),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "calls_per_s": round(len(latencies) / wall, 2),
    }


async def _closed_loop(
    call: Callable[[int], Awaitable[Any]], calls: int, concurrency: int
) -> dict[str, Any]:
    """`calls` calls from `concurrency` clients; per-call latency and rate."""
    latencies: list[float] = []
    counter = iter(range(calls))
    errors: list[str] = []

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = _stats(latencies, time.perf_counter() - start) if latencies else {}
    result.update(concurrency=concurrency, errors=len(errors))
    if errors:
        result["first_error"] = errors[0]
    return result


async def list_models_latency(
    target: str, application: str | None, calls: int, concurrency: int
) -> dict[str, Any]:
    """ListModels round trips (after 20 warm-up calls) on one channel."""
    import grpc

    metadata = (("application", application),) if application else None
    async with grpc.aio.insecure_channel(target) as channel:
        stub = models_pb2_grpc.ModelServiceStub(channel)
        request = models_pb2.ListModelsRequest()

        async def call(_: int) -> Any:
            return await stub.ListModels(request, metadata=metadata, timeout=30)

        for i in range(20):
            await call(i)
        return await _closed_loop(call, calls, concurrency)


async def generate_latency(
    target: str, application: str, calls: int, concurrency: int, max_tokens: int
) -> dict[str, Any]:
    """Unary GenerateText (greedy, `max_tokens`), routed to `application`."""
    import grpc

    from maestro.v1 import text_pb2_grpc

    metadata = (("application", application),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = text_pb2_grpc.TextServiceStub(channel)

        async def call(i: int) -> Any:
            request = text_pb2.GenerateTextRequest(
                prompt=f"the quiet river {i} walks to the old stone",
                max_tokens=max_tokens,
                temperature=0.0,
            )
            return await stub.GenerateText(request, metadata=metadata, timeout=300)

        for i in range(min(concurrency, 8)):
            await call(-1 - i)
        return await _closed_loop(call, calls, concurrency)


def measure_ingress(target: str, calls: int) -> dict[str, Any]:
    """ListModels behind Ray's ingress vs the bare grpcio server (own process)."""
    from bench.text_bench import free_port

    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "bench.hop", "--serve-bare", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bare.stdout is not None
        if bare.stdout.readline().strip() != "ready":
            raise RuntimeError("bare grpcio server did not start")
        out: dict[str, Any] = {}
        for label, tgt, app in (
            ("ray_ingress", target, HOP_APP),
            ("bare_grpcio", f"127.0.0.1:{port}", None),
        ):
            out[label] = {
                "c1": asyncio.run(list_models_latency(tgt, app, calls, 1)),
                "c16": asyncio.run(list_models_latency(tgt, app, calls * 2, 16)),
            }
    finally:
        bare.terminate()
        try:
            bare.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bare.kill()
            bare.wait()
    return out


def measure_handle_hop(
    target: str, concurrencies: Sequence[int], calls: dict[int, int], max_tokens: int
) -> dict[str, Any]:
    """GenerateText direct vs through the hop deployment, at each concurrency."""
    out: dict[str, Any] = {}
    for c in concurrencies:
        out[str(c)] = {
            side: asyncio.run(generate_latency(target, app, calls[c], c, max_tokens))
            for side, app in (("direct", "text"), ("handle_hop", HOP_APP))
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="127.0.0.1:9000")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_bare:
        asyncio.run(serve_bare(args.serve_bare))
        return 0
    result = {
        "list_models": measure_ingress(args.target, args.calls),
        "handle_hop": measure_handle_hop(args.target, [1, 32], {1: 30, 32: 256}, 32),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
