"""Serve tier: the text application on an in-process local Ray cluster.

Covers what only a live deployment shows: Health is NOT_SERVING while vLLM
loads and SERVING after, and Ray's queue limit surfaces as RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import ray
import yaml
from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve.config import gRPCOptions

from deployments.text import TextDeployment, resolve_config
from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target(demo_models: Path) -> Iterator[str]:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    serve.start(
        http_options={"host": "127.0.0.1", "port": free_port()},
        grpc_options=gRPCOptions(
            port=port,
            grpc_servicer_functions=config["grpc_options"]["grpc_servicer_functions"],
        ),
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_health_goes_from_not_serving_to_serving(target: str) -> None:
    (text,) = [
        a
        for a in yaml.safe_load((ROOT / "serve_config.yaml").read_text())[
            "applications"
        ]
        if a["name"] == "text"
    ]
    # A tight queue so the overload test below can fill it.
    app = TextDeployment.options(max_ongoing_requests=1, max_queued_requests=1).bind(
        resolve_config(text["args"]).model_dump()
    )
    serve.run(app, name="text", route_prefix="/text")
    seen = []
    with MaestroClient(target, timeout=10) as client:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status = client.health("text")
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            (model,) = default_models(client.list_models(["text"]))
            assert not model.ready and model.status_message == "loading"
            time.sleep(0.5)
        assert seen == [
            health_pb2.HealthCheckResponse.NOT_SERVING,
            health_pb2.HealthCheckResponse.SERVING,
        ]
        (model,) = default_models(client.list_models(["text"]))
        assert model.ready and model.status_message == "ready"


async def test_queue_limit_is_resource_exhausted(target: str) -> None:
    codes: list[grpc.StatusCode | None] = []

    async def long_stream(client: AsyncMaestroClient) -> None:
        try:
            async for _ in client.stream_text(
                "a long tale", regex="[0-9]{300}", max_tokens=400
            ):
                pass
            codes.append(None)
        except MaestroRpcError as error:
            codes.append(error.code)

    async with AsyncMaestroClient(target, timeout=120) as client:
        await asyncio.gather(*(long_stream(client) for _ in range(5)))
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        assert None in codes  # the admitted ones completed
        reply = await client.generate_text("after the storm", max_tokens=4)
        assert reply.usage.completion_tokens > 0
