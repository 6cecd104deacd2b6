"""Serve tier: the response cache in front of the real engines, and the
studio's Compose cache on top of every family.

vLLM on the demo LLM, the demo diffusion pipeline, the demo VITS voice and
the studio, deployed as serve_config.yaml deploys them (the same builders,
through Ray's gRPC proxy) with `cache: {enabled: true}` (the in-process
store) on each. For each RPC a repeated deterministic request is generated
once and then answered from the cache byte for byte, saying `x-cache: miss`
and then `hit`; streams replay as streams. A LoRA reloaded from rewritten
weights gets new keys: it misses and renders differently. A seeded Compose
is replayed whole, saying `hit`. (Voice's own calls and the Redis store have
their own test, tests/serve/test_cache_replicas.py.)
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from safetensors.torch import load_file, save_file

from maestro import MaestroClient
from maestro.v1 import (
    image_pb2,
    image_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    studio_pb2,
    studio_pb2_grpc,
    text_pb2,
    text_pb2_grpc,
)
from tests.helpers import DEMO, ROOT
from tests.helpers.serve_stack import deploy, local_serve

pytestmark = pytest.mark.slow

LORA_FILE = "pytorch_lora_weights.safetensors"
SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run-time adapter folder this test may rewrite."""
    root = tmp_path_factory.mktemp("loras")
    shutil.copytree(DEMO / "image" / "loras" / "demo-style", root / "changing")
    return root


@pytest.fixture(scope="module")
def target(demo_models: Path, loras: Path) -> Iterator[str]:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    apps = []
    for app in config["applications"]:
        if app["name"] not in ("text", "image", "voice", "studio"):
            continue
        app = copy.deepcopy(app)
        app["args"]["cache"] = {"enabled": True}
        if app["name"] == "image":
            app["args"]["engine"]["adapter_dirs"].append(str(loras))
        apps.append(app)
    with local_serve(num_cpus=2, num_gpus=0) as target:
        deploy(apps)
        with MaestroClient(target, timeout=30) as client:
            client.wait_until_serving(300, ["text", "image", "voice", "studio"])
        yield target


def _unary(target: str, app: str, stub: Any, rpc: str, request: Any) -> tuple:
    """(response, x-cache trailer) of one unary call."""
    with grpc.insecure_channel(target) as channel:
        reply, call = getattr(stub(channel), rpc).with_call(
            request, metadata=[("application", app)], timeout=120
        )
    return reply, dict(call.trailing_metadata()).get("x-cache")


def _stream(target: str, app: str, stub: Any, rpc: str, request: Any) -> tuple:
    """(messages, x-cache trailer) of one streaming call."""
    with grpc.insecure_channel(target) as channel:
        call = getattr(stub(channel), rpc)(
            request, metadata=[("application", app)], timeout=120
        )
        messages = list(call)
        return messages, dict(call.trailing_metadata()).get("x-cache")


def _text(target: str, rpc: str, request: Any) -> tuple:
    call = _stream if rpc == "StreamText" else _unary
    return call(target, "text", text_pb2_grpc.TextServiceStub, rpc, request)


def _image(target: str, rpc: str, request: Any) -> tuple:
    call = _stream if rpc == "StreamImage" else _unary
    return call(target, "image", image_pb2_grpc.ImageServiceStub, rpc, request)


def test_greedy_text_is_generated_once(target: str) -> None:
    request = text_pb2.GenerateTextRequest(
        prompt="The cache", max_tokens=12, temperature=0
    )
    first, status = _text(target, "GenerateText", request)
    assert status == "miss" and first.usage.completion_tokens > 0
    again, status = _text(target, "GenerateText", request)
    assert status == "hit"
    assert again.SerializeToString() != first.SerializeToString()  # request ids
    again.request_id = first.request_id
    assert again.SerializeToString() == first.SerializeToString()
    sampled = text_pb2.GenerateTextRequest(prompt="The cache", max_tokens=12)
    assert [_text(target, "GenerateText", sampled)[1] for _ in range(2)] == [
        "miss",
        "miss",
    ]  # temperature 1, no seed: never cached


def test_a_text_stream_replays_as_a_stream(target: str) -> None:
    request = text_pb2.StreamTextRequest(prompt="Replay", max_tokens=12, seed=4)
    first, status = _text(target, "StreamText", request)
    assert status == "miss"
    replay, status = _text(target, "StreamText", request)
    assert status == "hit"
    whole = "".join(m.text for m in first)
    # The whole text in one message, then the final one (text-less).
    assert [m.text for m in replay] == ([whole, ""] if whole else [""])
    assert replay[-1].finish_reason == first[-1].finish_reason != 0
    assert replay[-1].usage == first[-1].usage
    # Stamped with this call's id, not the one that filled the entry.
    assert {m.request_id for m in replay} == {replay[0].request_id}
    assert replay[0].request_id not in ("", first[0].request_id)


def test_a_seeded_image_is_rendered_once(target: str) -> None:
    request = image_pb2.GenerateImageRequest(prompt="a barn", seed=3, **SMALL)
    first, status = _image(target, "GenerateImage", request)
    assert status == "miss"
    again, status = _image(target, "GenerateImage", request)
    assert status == "hit"
    assert [i.data for i in again.images] == [i.data for i in first.images]
    stream = image_pb2.StreamImageRequest(prompt="a barn", seed=3, **SMALL)
    events, status = _image(target, "StreamImage", stream)
    assert status == "miss" and events[-1].WhichOneof("event") == "result"
    replay, status = _image(target, "StreamImage", stream)
    assert status == "hit"
    assert [e.WhichOneof("event") for e in replay] == ["result"]
    assert replay[0].result.images[0].data == events[-1].result.images[0].data


def _adapter(target: str, rpc: str, request: Any) -> Any:
    with grpc.insecure_channel(target) as channel:
        stub = models_pb2_grpc.ModelServiceStub(channel)
        return getattr(stub, rpc)(
            request, metadata=[("application", "image")], timeout=120
        )


def test_an_adapter_reloaded_from_changed_weights_misses(
    target: str, loras: Path
) -> None:
    folder = loras / "changing"
    load = models_pb2.LoadAdapterRequest(name="changing", path=str(folder))
    _adapter(target, "LoadAdapter", load)
    request = image_pb2.GenerateImageRequest(
        prompt="a barn",
        seed=5,
        loras=[image_pb2.LoraWeight(name="changing", weight=1.0)],
        **SMALL,
    )
    before, status = _image(target, "GenerateImage", request)
    assert status == "miss"
    assert _image(target, "GenerateImage", request)[1] == "hit"
    _adapter(target, "UnloadAdapter", models_pb2.UnloadAdapterRequest(name="changing"))
    weights = load_file(folder / LORA_FILE)
    save_file({name: t * 4 for name, t in weights.items()}, folder / LORA_FILE)
    _adapter(target, "LoadAdapter", load)
    after, status = _image(target, "GenerateImage", request)
    assert status == "miss"  # same name, same request: new weights, new key
    assert after.images[0].data != before.images[0].data
    assert _image(target, "GenerateImage", request)[1] == "hit"


def test_a_seeded_compose_is_replayed_whole(target: str) -> None:
    request = studio_pb2.ComposeRequest(
        brief="a lighthouse keeper finds a comet",
        num_scenes=1,
        seed=12,
        image=studio_pb2.ComposeImageSettings(width=64, height=64, steps=2),
    )
    stub = studio_pb2_grpc.StudioServiceStub
    first, status = _stream(target, "studio", stub, "Compose", request)
    assert status == "miss" and first[-1].done.scenes_succeeded == 1
    replay, status = _stream(target, "studio", stub, "Compose", request)
    assert status == "hit"
    kinds = [e.WhichOneof("event") for e in first]
    assert [e.WhichOneof("event") for e in replay] == kinds
    assert [e.SerializeToString() for e in replay[:-1]] == [
        e.SerializeToString() for e in first[:-1]
    ]
    assert [t.stage for t in replay[-1].done.timings] == ["total"]
    with grpc.insecure_channel(target) as channel:
        stats = models_pb2_grpc.ModelServiceStub(channel).CacheStats(
            models_pb2.CacheStatsRequest(),
            metadata=[("application", "studio")],
            timeout=30,
        )
    assert stats.stats.family == models_pb2.FAMILY_STUDIO
    assert stats.stats.entries == 1 and stats.stats.hits == 1
