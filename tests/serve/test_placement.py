"""Serve tier: GPU placement of the two GPU profiles, proven without a GPU.

Ray is started with *logical* GPUs (1, 3, then 2) and each profile is
deployed with its real resource shapes (`ray_actor_options`) while the demo
checkpoints run on the CPU (see tests/helpers/serve_stack.py; text is a
stand-in with the text deployment's shape, no vLLM). Each family reports the
GPU ids Ray assigned its replica in ListModels stats (`gpu_ids`).
"""

from __future__ import annotations

import time

import grpc
import pytest
import ray
from grpc_health.v1 import health_pb2
from ray import serve

from maestro import MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from tests.helpers import wait_for
from tests.helpers.serve_stack import demo_profile, deploy, local_serve

pytestmark = pytest.mark.slow

SHARED = "serve_config.gpu.yaml"
EXCLUSIVE = "serve_config.gpu-exclusive.yaml"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
STARTUP_S = 240  # a profile's families, started together, until all serve


def _gpu_ids(client: MaestroClient, families: list[str]) -> dict[str, str]:
    models = default_models(client.list_models(families))
    by_family = dict(zip(families, models, strict=True))
    return {family: info.stats["gpu_ids"] for family, info in by_family.items()}


def test_shared_profile_puts_every_family_on_one_gpu(demo_models) -> None:
    with local_serve(num_cpus=16, num_gpus=1) as target:
        deploy(demo_profile(SHARED, ["text", "image", "voice", "studio"]))
        with MaestroClient(target, timeout=10) as client:
            client.wait_until_serving(STARTUP_S, ["text", "image", "voice", "studio"])
            ids = _gpu_ids(client, ["text", "image", "voice"])
            assert ids == {"text": "0", "image": "0", "voice": "0"}
            # 0.4 + 0.4 + 0.1 of the one card are taken; the studio takes none.
            assert ray.available_resources()["GPU"] == pytest.approx(0.1)
            reply = client.synthesize("Shared card.", seed=1)
            assert reply.audio


def test_exclusive_profile_gives_each_family_its_own_gpu(demo_models) -> None:
    with local_serve(num_cpus=16, num_gpus=3) as target:
        deploy(demo_profile(EXCLUSIVE, ["text", "image", "voice"]))
        with MaestroClient(target, timeout=10) as client:
            client.wait_until_serving(STARTUP_S, ["text", "image", "voice"])
            ids = _gpu_ids(client, ["text", "image", "voice"])
            assert sorted(ids.values()) == ["0", "1", "2"], ids
            assert ray.available_resources().get("GPU", 0) == 0


def test_family_that_does_not_fit_waits_and_says_why(demo_models) -> None:
    """Exclusive profile on 2 GPUs: the third family (image) cannot be placed."""
    with local_serve(num_cpus=16, num_gpus=2) as target:
        # Text and voice first, so they are the ones holding the two GPUs;
        # the studio starts before the image deployment exists at all.
        deploy(demo_profile(EXCLUSIVE, ["text", "voice", "studio"]))
        with MaestroClient(target, timeout=10) as client:
            client.wait_until_serving(STARTUP_S, ["text", "voice"])
            deploy(demo_profile(EXCLUSIVE, ["text", "image", "voice", "studio"]))

            def studio_says_image_waits() -> str | None:
                (studio,) = client.list_models(["studio"])
                reason = studio.stats.get("image", "")
                return studio.status_message if "GPU" in reason else None

            message = wait_for(studio_says_image_waits, 60, "the waiting reason")
            assert message.startswith("waiting for image:")
            assert "be scheduled" in message and '"GPU": 1.0' in message
            (studio,) = client.list_models(["studio"])
            assert not studio.ready
            assert studio.stats["voice"].startswith("reachable, ready")
            assert client.health("studio") == NOT_SERVING

            # The waiting family's own RPCs queue in Ray until their deadline:
            # answered, not hung.
            began = time.monotonic()
            with MaestroClient(target, timeout=2) as impatient:
                with pytest.raises(MaestroRpcError) as error:
                    impatient.health("image")
            assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - began < 10

            # The families that fit keep serving, and the image replica stays
            # pending rather than failing.
            assert client.synthesize("Still here.", seed=2).audio
            assert client.health("text") == SERVING
            image = serve.status().applications["image"]
            assert str(image.status.value) == "DEPLOYING"
