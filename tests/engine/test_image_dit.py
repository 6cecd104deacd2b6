"""The image engine on a transformer (DiT) backbone: the Stable Diffusion 3 demo.

Real diffusers on `models/demo/image-sd3` (SD3Transformer2DModel, two CLIP
encoders, no T5, 16-channel VAE, flow-match scheduler), on CPU, through the
same engine as the UNet demo: batching, per-step progress, cancellation.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.pipeline import ImageJob
from deployments.engines.image.types import ImageProgress, ImageRequest, ImageResult
from deployments.errors import InvalidArgument
from models.image_demo import DEMO_LORA, LORA_DIR, SD3_SIZE_MULTIPLE

pytestmark = pytest.mark.slow


def _config(model: Path, **fields: Any) -> ImageEngineConfig:
    return ImageEngineConfig.model_validate(
        {
            "model": str(model),
            "device": "cpu",
            "limits": {"default_steps": 4, "max_images": 8, "max_size": 256},
            # Generous wait: requests submitted together must meet.
            "batching": {"max_batch_size": 8, "max_wait_ms": 200},
            **fields,
        }
    )


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[ImageEngine]:
    engine = ImageEngine(_config(demo_models / "image-sd3"))
    await engine.start()
    yield engine
    await engine.shutdown()


@contextmanager
def _transformer_rows(
    engine: ImageEngine, *, delay: float = 0.0
) -> Iterator[list[int]]:
    """Rows of every transformer call meanwhile (img2img shares it); `delay`
    slows each call so a test can act between steps without racing them."""
    assert engine._runner is not None
    rows: list[int] = []

    def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        rows.append(kwargs["hidden_states"].shape[0])
        time.sleep(delay)

    transformer = engine._runner.text2img.transformer
    handle = transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield rows
    finally:
        handle.remove()


async def test_the_dit_checkpoint_brings_its_own_limits(engine: ImageEngine) -> None:
    assert engine._runner is not None
    pipe = engine._runner.text2img
    assert type(pipe).__name__ == "StableDiffusion3Pipeline"
    assert getattr(pipe, "unet", None) is None and pipe.text_encoder_3 is None
    assert type(engine._runner.img2img).__name__ == "StableDiffusion3Img2ImgPipeline"
    lim = engine.limits
    assert lim is not None
    assert (lim.default_width, lim.default_height) == (64, 64)
    assert lim.size_multiple == SD3_SIZE_MULTIPLE == 16
    assert lim.schedulers == ("flow_match_euler",)
    assert lim.default_scheduler == "flow_match_euler"  # the checkpoint's own
    info = engine.limits_info()
    assert info["width"] == "multiple of 16 in 64..256"
    assert info["schedulers"] == "flow_match_euler"


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
    assert other.images[0].data != first.images[0].data
    large = await engine.generate(ImageRequest(prompt="x", seed=1, width=128))
    assert Image.open(io.BytesIO(large.images[0].data)).size == (128, 64)


async def test_two_compatible_requests_share_one_pipeline_call(
    engine: ImageEngine,
) -> None:
    before = dict(engine.batcher.stats.sizes)
    with _transformer_rows(engine) as rows:
        results = await asyncio.gather(
            *(engine.generate(ImageRequest(prompt=f"cat {i}", seed=i)) for i in (1, 2))
        )
    assert all(len(r.images) == 1 for r in results)
    assert dict(engine.batcher.stats.sizes).get(2, 0) == before.get(2, 0) + 1
    # One call per step (4), each on both requests: [negative; positive] x 2.
    assert rows == [4] * 4


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
    assert [p.step for p in progress if p.previews] == [2, 4]
    # 16 latent channels through SD3's latent -> RGB map: 1/8 of the size.
    preview = progress[1].previews[0]
    assert len(progress[1].previews) == 2 and (preview.width, preview.height) == (8, 8)
    assert Image.open(io.BytesIO(preview.data)).size == (8, 8)
    assert isinstance(events[-1], ImageResult) and len(events[-1].images) == 2


async def test_a_cancelled_stream_stops_its_batch(engine: ImageEngine) -> None:
    cancelled = engine.cancelled_requests
    stream = engine.stream(ImageRequest(prompt="slow", seed=1, steps=40))
    with _transformer_rows(engine, delay=0.05) as rows:
        first = await anext(stream)
        assert isinstance(first, ImageProgress) and first.step == 1
        await stream.aclose()  # the client went away
        assert engine.cancelled_requests == cancelled + 1
        # One worker: this runs once the cancelled batch has stopped.
        result = await engine.generate(ImageRequest(prompt="next", seed=1, steps=2))
    slow_calls = len(rows) - 2
    assert slow_calls >= 1  # the batch had started its 40 steps
    # Interrupted a few steps after the close; uninterrupted it makes 40 calls.
    assert slow_calls <= 6, f"{slow_calls} transformer calls of 40 ran"
    assert len(result.images) == 1


def _cancel_at(jobs: list[ImageJob], step: int, which: set[int]) -> list[list[int]]:
    """Jobs `which` cancel themselves when `step` is reported (on the worker,
    so the point is exact); returns the steps each job is told about."""
    told: list[list[int]] = [[] for _ in jobs]

    def reporter(k: int, job: ImageJob) -> Any:
        def on_step(at: int, total: int, previews: list[Any]) -> None:
            told[k].append(at)
            if k in which and at == step:
                job.cancel()

        return on_step

    for k, job in enumerate(jobs):
        job.on_step = reporter(k, job)
    return told


async def _run(
    engine: ImageEngine, requests: list[ImageRequest], step: int, which: set[int]
) -> tuple[list[Any], list[list[int]]]:
    """`requests` as one batch straight through the runner, on the worker."""
    assert engine._runner is not None
    jobs = [await engine._prepare(r, want_progress=True) for r in requests]
    told = _cancel_at(jobs, step, which)
    loop = asyncio.get_running_loop()
    results = await loop.run_in_executor(engine._worker, engine._runner.run, jobs)
    return results, told


async def test_a_cancelled_request_is_masked_and_the_rest_finish(
    engine: ImageEngine,
) -> None:
    requests = [ImageRequest(prompt=f"p{k}", seed=k, steps=4) for k in range(2)]
    reference, _ = await _run(engine, requests, 0, set())
    with _transformer_rows(engine) as rows:
        results, told = await _run(engine, requests, 1, {0})
    # SD3 is not in rows.py's tables: the rows stay (masked), nothing is cut.
    assert rows == [4] * 4 and told == [[1], [1, 2, 3, 4]]
    assert results[0] is None
    assert [a.tolist() for a in results[1]] == [a.tolist() for a in reference[1]]


async def test_a_batch_whose_requests_are_all_cancelled_is_interrupted(
    engine: ImageEngine,
) -> None:
    requests = [ImageRequest(prompt="x", seed=k, steps=6) for k in range(2)]
    with _transformer_rows(engine) as rows:
        results, told = await _run(engine, requests, 2, {0, 1})
    assert results == [None, None]
    assert rows == [4, 4] and told == [[1, 2], [1, 2]]  # steps 3..6 never ran


async def test_image_to_image_through_the_sd3_img2img_pipeline(
    engine: ImageEngine,
) -> None:
    buffer = io.BytesIO()
    gradient = np.linspace(0, 255, 72 * 72 * 3).reshape(72, 72, 3)
    Image.fromarray(gradient.astype(np.uint8)).save(buffer, format="PNG")
    request = ImageRequest(
        prompt="a bright star", seed=4, init_image=buffer.getvalue(), strength=0.5
    )
    edited = await engine.generate(request)
    assert (await engine.generate(request)).images[0].data == edited.images[0].data
    image = edited.images[0]
    assert (image.width, image.height) == (64, 64)  # 72 rounded down to 16s


@pytest.mark.parametrize(
    ("request_", "field", "allowed"),
    [
        (ImageRequest(prompt="a", scheduler="euler"), "scheduler", "flow_match_euler"),
        (ImageRequest(prompt="a", scheduler="warp"), "scheduler", "flow_match_euler"),
        (ImageRequest(prompt="a", width=72), "width", "a multiple of 16 in 64..256"),
        (ImageRequest(prompt="a", height=88), "height", "a multiple of 16 in 64..256"),
    ],
)
async def test_bad_input_is_refused_naming_what_this_model_allows(
    engine: ImageEngine, request_: ImageRequest, field: str, allowed: str
) -> None:
    queued = engine.batcher.stats.batches
    with pytest.raises(InvalidArgument) as info:
        await engine.generate(request_)
    assert info.value.field == field and info.value.allowed.startswith(allowed)
    assert engine.batcher.stats.batches == queued


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("unet-scheduler", "does not suit .* allowed: flow_match_euler"),
        ("unet-lora", "matches no layer of StableDiffusion3Pipeline"),
    ],
)
async def test_a_config_that_does_not_suit_the_dit_fails_at_start(
    demo_models: Path, case: str, match: str
) -> None:
    # The UNet demo's LoRA: diffusers only warns that no key matches.
    lora = demo_models / "image" / LORA_DIR / DEMO_LORA
    fields = {
        "unet-scheduler": {"default_scheduler": "euler"},
        "unet-lora": {"loras": [{"name": DEMO_LORA, "path": str(lora)}]},
    }[case]
    engine = ImageEngine(_config(demo_models / "image-sd3", **fields))
    with pytest.raises(RuntimeError, match=match):
        await engine.start()
    assert not engine.ready
    await engine.shutdown()
