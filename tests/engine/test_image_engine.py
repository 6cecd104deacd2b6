"""The image engine alone (no Ray): real diffusers on the demo checkpoint, on CPU."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from deployments.engines.image import ImageEngine, ImageEngineConfig
from deployments.engines.image_pipeline import SCHEDULERS
from deployments.engines.image_types import (
    ImageProgress,
    ImageRequest,
    ImageResult,
    LoraChoice,
)
from deployments.errors import InvalidArgument, NotFound
from models.image_demo import DEMO_LORA, LORA_DIR

pytestmark = pytest.mark.slow

LORA = (LoraChoice(DEMO_LORA, 1.0),)


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[ImageEngine]:
    model = demo_models / "image"
    engine = ImageEngine(
        ImageEngineConfig.model_validate(
            {
                "model": str(model),
                "device": "cpu",
                "loras": [
                    {"name": DEMO_LORA, "path": str(model / LORA_DIR / DEMO_LORA)}
                ],
                "limits": {
                    "default_steps": 4,
                    "max_images": 8,
                    "max_size": 256,
                    "max_total_pixels": 8 * 128 * 128,
                },
                # Generous wait: requests submitted together must meet.
                "batching": {"max_batch_size": 8, "max_wait_ms": 200},
            }
        )
    )
    await engine.start()
    yield engine
    await engine.shutdown()


def _png(result: ImageResult, i: int = 0) -> bytes:
    return result.images[i].data


def _sizes(engine: ImageEngine) -> dict[int, int]:
    return dict(engine.batcher.stats.sizes)


async def test_same_request_and_seed_give_the_same_png(engine: ImageEngine) -> None:
    request = ImageRequest(prompt="a red box", seed=7, num_images=2)
    first = await engine.generate(request)
    again = await engine.generate(request)
    assert [i.data for i in first.images] == [i.data for i in again.images]
    assert [i.seed for i in first.images] == [7, 8]
    assert first.images[0].data != first.images[1].data  # image i uses seed + i
    image = first.images[0]
    assert (image.mime_type, image.width, image.height) == ("image/png", 64, 64)
    assert Image.open(io.BytesIO(image.data)).size == (64, 64)
    other = await engine.generate(ImageRequest(prompt="a red box", seed=8))
    assert _png(other) != _png(first)


async def test_unseeded_requests_report_the_seed_that_reproduces_them(
    engine: ImageEngine,
) -> None:
    result = await engine.generate(ImageRequest(prompt="a map"))
    seed = result.images[0].seed
    again = await engine.generate(ImageRequest(prompt="a map", seed=seed))
    assert _png(again) == _png(result)


async def test_concurrent_compatible_requests_run_as_one_batch(
    engine: ImageEngine,
) -> None:
    before = _sizes(engine)
    results = await asyncio.gather(
        *(engine.generate(ImageRequest(prompt=f"cat {i}", seed=i)) for i in range(6))
    )
    assert all(len(r.images) == 1 for r in results)
    after = _sizes(engine)
    assert after.get(6, 0) == before.get(6, 0) + 1
    assert "6:" in engine.stats()["batch_sizes"]


async def test_incompatible_requests_get_their_own_batches(
    engine: ImageEngine,
) -> None:
    before = engine.batcher.stats.batches
    small, large, other = await asyncio.gather(
        engine.generate(ImageRequest(prompt="a", seed=1)),
        engine.generate(ImageRequest(prompt="a", seed=1, width=128, height=128)),
        engine.generate(ImageRequest(prompt="a", seed=1, steps=2)),
    )
    assert engine.batcher.stats.batches == before + 3
    assert large.images[0].width == 128 and small.images[0].width == 64
    assert _png(other) != _png(small)


async def test_lora_changes_the_image_and_removing_it_restores_it(
    engine: ImageEngine,
) -> None:
    request = ImageRequest(prompt="a quiet song", seed=3)
    base = await engine.generate(request)
    styled = await engine.generate(
        ImageRequest(prompt="a quiet song", seed=3, loras=LORA)
    )
    half = await engine.generate(
        ImageRequest(prompt="a quiet song", seed=3, loras=(LoraChoice(DEMO_LORA, 0.5),))
    )
    restored = await engine.generate(request)
    assert _png(styled) != _png(base) and _png(half) not in (_png(base), _png(styled))
    assert _png(restored) == _png(base)


async def test_no_adapter_state_leaks_between_concurrent_requests(
    engine: ImageEngine,
) -> None:
    def plain(seed: int) -> ImageRequest:
        return ImageRequest(prompt="the map", seed=seed)

    def styled(seed: int) -> ImageRequest:
        return ImageRequest(prompt="the map", seed=seed, loras=LORA)

    # References with the same batch-mates as in the mixed run below.
    plain_ref = await asyncio.gather(
        engine.generate(plain(1)), engine.generate(plain(2))
    )
    styled_ref = await asyncio.gather(
        engine.generate(styled(1)), engine.generate(styled(2))
    )
    mixed = await asyncio.gather(
        engine.generate(plain(1)),
        engine.generate(styled(1)),
        engine.generate(plain(2)),
        engine.generate(styled(2)),
    )
    assert [_png(r) for r in mixed] == [
        _png(plain_ref[0]),
        _png(styled_ref[0]),
        _png(plain_ref[1]),
        _png(styled_ref[1]),
    ]
    assert _png(plain_ref[0]) != _png(styled_ref[0])


async def test_image_to_image_from_the_same_checkpoint(engine: ImageEngine) -> None:
    source = await engine.generate(ImageRequest(prompt="a bright star", seed=4))
    init = _png(source)
    request = ImageRequest(
        prompt="a bright star", seed=4, init_image=init, strength=0.5
    )
    edited = await engine.generate(request)
    assert _png(await engine.generate(request)) == _png(edited)
    assert _png(edited) != init
    stronger = await engine.generate(
        ImageRequest(prompt="a bright star", seed=4, init_image=init, strength=1.0)
    )
    assert _png(stronger) != _png(edited)
    resized = await engine.generate(
        ImageRequest(prompt="x", seed=4, init_image=init, width=128, height=96)
    )
    assert (resized.images[0].width, resized.images[0].height) == (128, 96)
    assert Image.open(io.BytesIO(_png(resized))).size == (128, 96)


async def test_stream_reports_each_step_with_previews_then_the_images(
    engine: ImageEngine,
) -> None:
    events = [
        e
        async for e in engine.stream(
            ImageRequest(prompt="x", seed=5, steps=6, num_images=2, preview_every=2)
        )
    ]
    progress = [e for e in events if isinstance(e, ImageProgress)]
    assert [p.step for p in progress] == [1, 2, 3, 4, 5, 6]
    assert {p.total_steps for p in progress} == {6}
    assert all(
        b.elapsed_seconds >= a.elapsed_seconds
        for a, b in zip(progress, progress[1:], strict=False)
    )
    with_previews = [p.step for p in progress if p.previews]
    assert with_previews == [2, 4]  # the last step is followed by the images
    preview = progress[1].previews[0]
    assert len(progress[1].previews) == 2 and preview.mime_type == "image/png"
    assert Image.open(io.BytesIO(preview.data)).size == (preview.width, preview.height)
    assert preview.width < 64
    assert isinstance(events[-1], ImageResult) and len(events[-1].images) == 2


async def test_cancelling_one_request_lets_the_rest_of_its_batch_finish(
    engine: ImageEngine,
) -> None:
    before_batches = engine.batcher.stats.batches
    before_cancelled = engine.cancelled_requests
    streams = [
        engine.stream(ImageRequest(prompt=f"long {i}", seed=i, steps=40))
        for i in range(3)
    ]
    firsts = await asyncio.gather(*(anext(s) for s in streams))  # all submitted
    assert all(isinstance(f, ImageProgress) and f.step == 1 for f in firsts)
    await streams[0].aclose()  # the client went away
    results = []
    for stream in streams[1:]:
        steps = [e async for e in stream]
        assert [e.step for e in steps[:-1]] == list(range(2, 41))
        results.append(steps[-1])
    assert all(isinstance(r, ImageResult) and len(r.images) == 1 for r in results)
    assert engine.batcher.stats.batches == before_batches + 1  # one batch of 3
    assert engine.cancelled_requests == before_cancelled + 1


async def test_cancelling_a_lone_request_frees_the_engine(engine: ImageEngine) -> None:
    task = asyncio.create_task(
        engine.generate(ImageRequest(prompt="slow", seed=1, steps=50))
    )
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await engine.generate(ImageRequest(prompt="next", seed=1))
    assert len(result.images) == 1


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
async def test_every_listed_scheduler_runs(engine: ImageEngine, scheduler: str) -> None:
    result = await engine.generate(
        ImageRequest(prompt="a", seed=1, steps=3, scheduler=scheduler)
    )
    assert result.images[0].mime_type == "image/png"


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")],
)
async def test_formats(engine: ImageEngine, fmt: str, mime: str) -> None:
    result = await engine.generate(
        ImageRequest(prompt="a", seed=1, format=fmt, quality=40)
    )
    assert result.images[0].mime_type == mime
    assert Image.open(io.BytesIO(_png(result))).format == fmt.upper()


@pytest.mark.parametrize(
    ("request_", "error", "field"),
    [
        (ImageRequest(prompt="a", width=60), InvalidArgument, "width"),
        (ImageRequest(prompt="a", height=512), InvalidArgument, "height"),
        (ImageRequest(prompt="a", steps=-1), InvalidArgument, "steps"),
        (ImageRequest(prompt="a", steps=99), InvalidArgument, "steps"),
        (
            ImageRequest(prompt="a", guidance_scale=-1),
            InvalidArgument,
            "guidance_scale",
        ),
        (ImageRequest(prompt="a", num_images=9), InvalidArgument, "num_images"),
        (
            ImageRequest(prompt="a", width=256, height=256, num_images=8),
            InvalidArgument,
            "num_images",
        ),
        (ImageRequest(prompt="a", scheduler="warp"), InvalidArgument, "scheduler"),
        (ImageRequest(prompt="a", format="gif"), InvalidArgument, "format"),
        (ImageRequest(prompt="a", quality=500), InvalidArgument, "quality"),
        (ImageRequest(prompt="a", init_image=b"nope"), InvalidArgument, "init_image"),
        (ImageRequest(prompt="a", strength=0.5), InvalidArgument, "strength"),
        (ImageRequest(prompt="a", loras=(LoraChoice("nope"),)), NotFound, "nope"),
    ],
)
async def test_bad_input_is_refused_before_queueing(
    engine: ImageEngine, request_: ImageRequest, error: type, field: str
) -> None:
    queued = engine.batcher.stats.batches
    with pytest.raises(error) as info:
        await engine.generate(request_)
    assert str(info.value).startswith(field) or field in str(info.value)
    assert engine.batcher.stats.batches == queued


def test_unknown_model_is_not_found(engine: ImageEngine) -> None:
    with pytest.raises(NotFound, match="maestro"):
        engine.check_model("maestro-other")
    engine.check_model("")
    engine.check_model(engine.config.served_id)
