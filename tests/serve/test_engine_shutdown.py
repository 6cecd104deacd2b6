"""Serve tier: a stopping replica awaits its engine's async shutdown.

Ray Serve calls the deployment's `__del__` when a replica stops; before the
engine interface, `EngineIngress.__del__` skipped engines whose `shutdown` is
a coroutine (the image engine's), so its batcher task and pipeline worker
thread were never stopped. Here the real image engine on the demo checkpoint
runs in a real replica; the only addition is a marker file its shutdown
writes *after* an await, which exists only if Ray awaited the coroutine.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve

from deployments.engine_ingress import EngineIngress
from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.image.config import ImageAppConfig
from deployments.launch import free_port
from maestro.v1 import models_pb2

pytestmark = pytest.mark.slow


class MarkedImageEngine(ImageEngine):
    """The image engine, writing what its shutdown saw to `marker`."""

    def __init__(self, config: ImageEngineConfig, marker: str) -> None:
        super().__init__(config)
        self.marker = Path(marker)

    async def _unload(self) -> None:
        batcher_task = self.batcher._task
        await super()._unload()
        await asyncio.sleep(0.05)  # only an awaited coroutine gets past here
        self.marker.write_text(
            json.dumps(
                {
                    "batcher_stopped": batcher_task is None or batcher_task.done(),
                    "worker_stopped": self._worker._shutdown,
                    "ready": self.ready,
                }
            )
        )


@serve.deployment(name="MarkedImage")
class MarkedImageIngress(EngineIngress):
    family = "image"
    family_enum = models_pb2.FAMILY_IMAGE
    services = ("maestro.v1.ImageService",)

    def __init__(self, model: str, marker: str) -> None:
        config = ImageAppConfig(engine=ImageEngineConfig(model=model))
        self._start_registry(config, lambda c: MarkedImageEngine(c, marker))

    async def ready(self) -> dict[str, Any]:
        await self._engine_ready()
        # A batch ran, so the batcher's task and the worker thread are live.
        from deployments.engines.image.types import ImageRequest

        await self.engine.generate(
            ImageRequest(prompt="x", width=64, height=64, steps=1)
        )
        return {"ready": self.engine.ready, "status": self.engine.status_message}


@pytest.fixture(scope="module")
def local_serve() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def test_replica_stop_awaits_the_image_engine_shutdown(
    local_serve: None, demo_models: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "shutdown.json"
    app = MarkedImageIngress.bind(str(demo_models / "image"), str(marker))
    handle = serve.run(app, name="marked", route_prefix=None)
    assert handle.ready.remote().result(timeout_s=120) == {
        "ready": True,
        "status": "ready",
    }
    assert not marker.exists()

    serve.delete("marked")
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the engine's async shutdown was never awaited"
    assert json.loads(marker.read_text()) == {
        "batcher_stopped": True,
        "worker_stopped": True,
        "ready": False,
    }
