"""Image request validation, encoders, converters and batching: no torch, no Ray."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import grpc
import numpy as np
import pytest
from PIL import Image

from deployments.engines.batching import BatchingConfig, KeyedBatcher
from deployments.engines.image.encoding import decode_image, encode_image
from deployments.engines.image.types import (
    ImageLimits,
    ImageRequest,
    LoraChoice,
    resolve,
)
from deployments.errors import InvalidArgument, NotFound
from deployments.image.converters import to_engine_request
from deployments.status import to_status
from maestro.v1 import image_pb2

LIMITS = ImageLimits(
    default_width=64,
    default_height=64,
    min_size=64,
    max_size=512,
    max_steps=50,
    default_steps=4,
    max_images=8,
    max_total_pixels=4 * 256 * 256,
    schedulers=("euler", "ddim"),
    loras=("demo-style",),
)


def _png(width: int = 16, height: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _req(**fields) -> ImageRequest:  # type: ignore[no-untyped-def]
    return ImageRequest(prompt="a cat", **fields)


@pytest.mark.parametrize(
    ("request_", "field", "allowed"),
    [
        (ImageRequest(prompt="  "), "prompt", "non-empty"),
        (_req(width=100), "width", "multiple of 8 in 64..512"),
        (_req(height=1024), "height", "multiple of 8 in 64..512"),
        (_req(width=56), "width", "64..512"),
        (_req(steps=-1), "steps", "1..50"),
        (_req(steps=51), "steps", "1..50"),
        (_req(guidance_scale=-0.5), "guidance_scale", "[0.0, 50.0]"),
        (_req(guidance_scale=float("nan")), "guidance_scale", "[0.0, 50.0]"),
        (_req(num_images=9), "num_images", "1..8"),
        (_req(num_images=-1), "num_images", "1..8"),
        (_req(width=512, height=512, num_images=2), "num_images", "262144 pixels"),
        (_req(seed=-1), "seed", "0.."),
        (_req(scheduler="warp"), "scheduler", "euler, ddim"),
        (_req(format="gif"), "format", "png, jpeg, webp"),
        (_req(format="7"), "format", "png, jpeg, webp"),
        (_req(quality=101), "quality", "1..100"),
        (_req(strength=0.5), "strength", "only with init_image"),
        (_req(init_image=b"x", strength=1.5), "strength", "1.0]"),
        (_req(init_image=b"x", steps=4, strength=0.1), "strength", "[0.25, 1.0]"),
        (_req(preview_every=-2), "preview_every", "0 (no previews)"),
        (
            _req(loras=(LoraChoice("demo-style"), LoraChoice("demo-style"))),
            "loras[1].name",
            "each adapter once",
        ),
        (
            _req(loras=(LoraChoice("demo-style", 9.0),)),
            "loras[0].weight",
            "[-4.0, 4.0]",
        ),
    ],
)
def test_bad_input_names_field_and_range(
    request_: ImageRequest, field: str, allowed: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve(request_, LIMITS)
    assert info.value.field == field
    code, details = to_status(info.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field) and allowed in details


def test_unknown_adapter_is_not_found_listing_the_available() -> None:
    with pytest.raises(NotFound) as info:
        resolve(_req(loras=(LoraChoice("nope", 1.0),)), LIMITS)
    assert to_status(info.value)[0] == grpc.StatusCode.NOT_FOUND
    assert "nope" in str(info.value) and "demo-style" in str(info.value)


def test_defaults_are_filled_in() -> None:
    r = resolve(_req(loras=(LoraChoice("demo-style"),)), LIMITS)
    assert (r.width, r.height, r.steps, r.num_images) == (64, 64, 4, 1)
    assert (r.scheduler, r.format, r.quality) == ("euler", "png", 90)
    assert r.guidance_scale == 7.5 and r.strength is None
    assert r.loras == (LoraChoice("demo-style", 1.0),)


def test_img2img_keeps_the_init_size_rounded_to_8() -> None:
    r = resolve(_req(init_image=b"x"), LIMITS, init_size=(133, 90))
    assert (r.width, r.height, r.strength) == (128, 88, 0.75)


# A transformer (DiT) model: sizes in patches of vae scale x patch (16), its
# own flow-match scheduler, and no image-to-image pipeline.
DIT_LIMITS = replace(
    LIMITS,
    size_multiple=16,
    schedulers=("flow_match_euler",),
    default_scheduler="flow_match_euler",
    image_to_image=False,
)


@pytest.mark.parametrize(
    ("request_", "field", "allowed"),
    [
        (_req(width=72), "width", "a multiple of 16 in 64..512"),
        (_req(scheduler="euler"), "scheduler", "flow_match_euler"),
        (_req(init_image=b"x"), "init_image", "text-to-image only"),
    ],
)
def test_limits_per_model_are_what_is_checked(
    request_: ImageRequest, field: str, allowed: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve(request_, DIT_LIMITS)
    assert info.value.field == field and allowed in str(info.value)
    assert to_status(info.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
    r = resolve(_req(width=80), DIT_LIMITS)
    assert (r.width, r.height, r.scheduler) == (80, 64, "flow_match_euler")


def test_img2img_rounds_the_init_size_to_the_models_multiple() -> None:
    limits = replace(LIMITS, size_multiple=16)
    r = resolve(_req(init_image=b"x"), limits, init_size=(133, 90))
    assert (r.width, r.height) == (128, 80)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encoders_round_trip(fmt: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    data, mime = encode_image(pixels, fmt, 90)
    assert mime == f"image/{fmt}"
    decoded = Image.open(io.BytesIO(data))
    assert decoded.size == (40, 24) and decoded.format == fmt.upper()
    if fmt == "png":  # lossless, and the same pixels give the same bytes
        assert (np.asarray(decoded) == pixels).all()
        assert encode_image(pixels, fmt, 90)[0] == data


def test_jpeg_quality_changes_the_size() -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert len(encode_image(pixels, "jpeg", 10)[0]) < len(
        encode_image(pixels, "jpeg", 95)[0]
    )


@pytest.mark.parametrize("data", [b"", b"not an image", _png()[:40]])
def test_undecodable_init_image_names_the_field(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_image(data, field="init_image", max_pixels=512 * 512)
    assert info.value.field == "init_image"


def test_oversized_init_image_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidArgument, match="init_image.*64x64"):
        decode_image(_png(64, 64), field="init_image", max_pixels=32 * 32)
    assert decode_image(_png(), field="init_image", max_pixels=1024).size == (16, 16)


def test_converter_maps_every_field() -> None:
    msg = image_pb2.StreamImageRequest(
        prompt="p",
        negative_prompt="n",
        width=64,
        height=72,
        steps=3,
        guidance_scale=2.0,
        seed=5,
        num_images=2,
        scheduler="ddim",
        format=image_pb2.IMAGE_FORMAT_WEBP,
        quality=50,
        init_image=b"abc",
        strength=0.5,
        loras=[image_pb2.LoraWeight(name="demo-style", weight=0.5)],
        preview_every=2,
    )
    r = to_engine_request(msg, "rid")
    assert (r.prompt, r.negative_prompt, r.width, r.height) == ("p", "n", 64, 72)
    assert (r.steps, r.guidance_scale, r.seed, r.num_images) == (3, 2.0, 5, 2)
    assert (r.scheduler, r.format, r.quality, r.strength) == ("ddim", "webp", 50, 0.5)
    assert r.loras == (LoraChoice("demo-style", 0.5),) and r.preview_every == 2
    unset = to_engine_request(image_pb2.GenerateImageRequest(prompt="p"), "rid")
    assert unset.guidance_scale is None and unset.seed is None
    assert unset.strength is None and unset.format == ""


async def test_batcher_groups_compatible_items_up_to_the_limit() -> None:
    batches: list[list[str]] = []

    async def run(items: list[str]) -> None:
        batches.append(items)
        await asyncio.sleep(0)

    batcher: KeyedBatcher[str] = KeyedBatcher(
        run,
        key=lambda item: item[0],
        size=lambda item: 1,
        config=BatchingConfig(max_batch_size=3, max_wait_ms=50),
    )
    for item in ["a1", "b1", "a2", "a3", "a4", "b2"]:
        batcher.submit(item)
    assert batcher.discard("b2") and not batcher.discard("zz")
    while batcher.stats.batches < 3:
        await asyncio.sleep(0.01)
    await batcher.close()
    # Oldest first; a full batch goes at once; b1 waits at most max_wait.
    assert batches == [["a1", "a2", "a3"], ["b1"], ["a4"]]
    assert batcher.stats.summary() == "1:2 3:1"


async def test_batcher_waits_only_while_recent_load_says_more_will_come() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> None:
        batches.append(items)

    batcher: KeyedBatcher[int] = KeyedBatcher(
        run,
        key=lambda item: 0,
        size=lambda item: 1,
        config=BatchingConfig(max_batch_size=8, max_wait_ms=600_000),
    )
    batcher.submit(1)  # no history: a lone request runs at once
    await asyncio.wait_for(_until(lambda: len(batches) == 1), timeout=10)
    for item in (2, 3, 4):  # a burst of 3, queued before the loop looks
        batcher.submit(item)
    await asyncio.wait_for(_until(lambda: len(batches) == 2), timeout=10)
    batcher.submit(5)  # recent batches held 3: wait for 3 ...
    await asyncio.sleep(0.05)
    assert len(batches) == 2 and batcher.queued == 1
    batcher.submit(6)
    batcher.submit(7)  # ... which are there now
    await asyncio.wait_for(_until(lambda: len(batches) == 3), timeout=10)
    await batcher.close()
    assert batches == [[1], [2, 3, 4], [5, 6, 7]]


async def _until(done) -> None:  # type: ignore[no-untyped-def]
    while not done():
        await asyncio.sleep(0.005)
