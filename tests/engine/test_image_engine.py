"""The image engine alone (no Ray): real diffusers on the demo checkpoint, on CPU."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deployments.engines.image import pipeline as image_pipeline
from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.pipeline import SCHEDULERS, ImageJob, PipelineRunner
from deployments.engines.image.types import (
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


@pytest.fixture(scope="module")
def init_png() -> bytes:
    buffer = io.BytesIO()
    gradient = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3)
    Image.fromarray(gradient.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


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
    with _unet_rows(engine) as rows:
        firsts = await asyncio.gather(*(anext(s) for s in streams))  # submitted
        assert all(isinstance(f, ImageProgress) and f.step == 1 for f in firsts)
        await streams[0].aclose()  # the client went away
        results = []
        for stream in streams[1:]:
            steps = [e async for e in stream]
            assert [e.step for e in steps[:-1]] == list(range(2, 41))
            results.append(steps[-1])
    # Its rows left the batch at a step after the close: the rest ran on 2.
    assert rows[0] == 6 and rows[-1] == 4 and sorted(set(rows)) == [4, 6]
    assert all(isinstance(r, ImageResult) and len(r.images) == 1 for r in results)
    assert engine.batcher.stats.batches == before_batches + 1  # one batch of 3
    assert engine.cancelled_requests == before_cancelled + 1


@contextmanager
def _unet_rows(where: ImageEngine | PipelineRunner) -> Iterator[list[int]]:
    """Rows of every UNet call meanwhile (both pipelines share the UNet)."""
    runner = where._runner if isinstance(where, ImageEngine) else where
    assert runner is not None
    rows: list[int] = []
    hook = runner.text2img.unet.register_forward_hook(
        lambda _m, args, _out: rows.append(args[0].shape[0])
    )
    try:
        yield rows
    finally:
        hook.remove()


def _cancel_at(jobs: list[ImageJob], cancel_at: dict[int, int]) -> list[list[int]]:
    """Job k cancels itself when step `cancel_at[k]` is reported (on the
    worker, so the point is exact); returns the steps each job is told."""
    steps: list[list[int]] = [[] for _ in jobs]

    def reporter(k: int, job: ImageJob) -> Any:
        def on_step(step: int, total: int, previews: list[Any]) -> None:
            steps[k].append(step)
            if cancel_at.get(k) == step:
                job.cancel()

        return on_step

    for k, job in enumerate(jobs):
        job.on_step = reporter(k, job)
    return steps


async def _run_jobs(
    engine: ImageEngine, requests: list[ImageRequest], cancel_at: dict[int, int]
) -> tuple[list[Any], list[list[int]]]:
    """Run `requests` as one batch on the engine's worker, straight through
    the runner, cancelling as `_cancel_at` says. Pixels (None: cancelled) and
    the steps each request was told about."""
    assert engine._runner is not None
    jobs = [await engine._prepare(r, want_progress=True) for r in requests]
    steps = _cancel_at(jobs, cancel_at)
    loop = asyncio.get_running_loop()
    results = await loop.run_in_executor(engine._worker, engine._runner.run, jobs)
    return results, steps


def _close(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    # The survivors' later steps ran on fewer rows; CPU kernels are not
    # batch-invariant, so low-order bits may move (seen: 0 or 1 level of 255).
    return len(a) == len(b) and all(
        np.abs(x.astype(int) - y.astype(int)).max() <= 2
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("img2img", [False, True], ids=["text2img", "img2img"])
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
async def test_a_cancelled_request_leaves_its_batch_at_the_next_step(
    engine: ImageEngine, scheduler: str, img2img: bool, init_png: bytes
) -> None:
    # img2img at strength 0.75 starts the schedule part-way (3 of 4 steps).
    extra: dict[str, Any] = {"init_image": init_png, "strength": 0.75}
    requests = [
        ImageRequest(
            prompt=f"p{k}", seed=10 * k, steps=4, scheduler=scheduler, num_images=n
        )
        for k, n in enumerate([2, 1, 1])
    ]
    if img2img:
        requests = [dataclasses.replace(r, **extra) for r in requests]
    with _unet_rows(engine) as ref_rows:
        reference, _ = await _run_jobs(engine, requests, {})
    with _unet_rows(engine) as rows:
        results, steps = await _run_jobs(engine, requests, {1: 1})
    calls = len(ref_rows)
    assert ref_rows == [2 * 4] * calls  # guidance: [negative; positive] rows
    assert rows == [2 * 4] + [2 * 3] * (calls - 1)  # from step 2 on, 3 rows
    assert results[1] is None and steps[1] == [1]
    assert steps[0] == steps[2] == list(range(1, calls + 1))
    assert _close(results[0], reference[0]) and _close(results[2], reference[2])
    assert results[0][0].tolist() != results[0][1].tolist()  # rows stay apart


async def test_requests_cancelled_at_different_steps_shrink_the_batch_each_time(
    engine: ImageEngine,
) -> None:
    requests = [
        ImageRequest(prompt=f"p{k}", seed=k, steps=4, guidance_scale=1.0, num_images=n)
        for k, n in enumerate([2, 1, 2, 1])
    ]
    reference, _ = await _run_jobs(engine, requests, {})
    with _unet_rows(engine) as rows:
        results, _ = await _run_jobs(engine, requests, {0: 1, 2: 2})
    assert rows == [6, 4, 2, 2]  # no guidance: one row per image
    assert results[0] is None and results[2] is None
    assert _close(results[1], reference[1]) and _close(results[3], reference[3])


async def test_a_batch_whose_requests_are_all_cancelled_stops(
    engine: ImageEngine,
) -> None:
    requests = [ImageRequest(prompt="x", seed=k, steps=6) for k in range(3)]
    with _unet_rows(engine) as rows:
        results, steps = await _run_jobs(engine, requests, {0: 1, 1: 1, 2: 2})
    assert results == [None, None, None]
    assert rows == [6, 2] and steps == [[1], [1], [1, 2]]


async def test_pipelines_whose_rows_cannot_be_cut_mask_them(
    engine: ImageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [ImageRequest(prompt="x", seed=k, steps=4) for k in range(2)]
    reference, _ = await _run_jobs(engine, requests, {})
    monkeypatch.setattr(image_pipeline, "row_tensors", lambda pipe: None)
    with _unet_rows(engine) as rows:
        results, steps = await _run_jobs(engine, requests, {0: 1})
    assert rows == [4] * 4 and steps == [[1], [1, 2, 3, 4]]
    assert results[0] is None and results[1] is not None
    assert [a.tolist() for a in results[1]] == [a.tolist() for a in reference[1]]


@pytest.fixture(scope="module")
def sdxl_runner(demo_models: Path) -> PipelineRunner:
    """A tiny random SDXL-architecture pipeline (two text encoders, text_time
    conditioning) on the demo tokenizer: SDXL's own loop tensors, no download."""
    import torch
    from diffusers import (
        AutoencoderKL,
        AutoPipelineForImage2Image,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        PreTrainedTokenizerFast,
    )

    tokenizer = PreTrainedTokenizerFast.from_pretrained(
        demo_models / "image" / "tokenizer"
    )
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 2,
    }
    blocks = {"block_out_channels": (32, 64), "norm_num_groups": 32}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe = StableDiffusionXLPipeline(
            vae=AutoencoderKL(
                **blocks,
                down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2,
                sample_size=64,
            ),
            text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
            text_encoder_2=CLIPTextModelWithProjection(
                CLIPTextConfig(**text, projection_dim=32)
            ),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=UNet2DConditionModel(
                **blocks,
                sample_size=32,
                layers_per_block=1,
                cross_attention_dim=64,  # both encoders' hidden states
                attention_head_dim=(2, 4),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                addition_embed_type="text_time",
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=6 * 8 + 32,
            ),
            scheduler=EulerDiscreteScheduler(
                beta_schedule="scaled_linear", beta_end=0.012, steps_offset=1
            ),
        )
    pipe.set_progress_bar_config(disable=True)
    img2img = AutoPipelineForImage2Image.from_pipe(pipe)
    img2img.set_progress_bar_config(disable=True)
    return PipelineRunner(pipe, img2img, device="cpu")


@pytest.mark.parametrize(
    ("img2img", "scheduler"), [(False, "euler_a"), (True, "dpmpp_2m")]
)
def test_sdxl_batches_lose_cancelled_rows_too(
    sdxl_runner: PipelineRunner, img2img: bool, scheduler: str, init_png: bytes
) -> None:
    init = Image.open(io.BytesIO(init_png)).convert("RGB") if img2img else None

    def jobs() -> list[ImageJob]:
        request = ImageRequest(
            prompt="p",
            width=64,
            height=64,
            steps=4,
            guidance_scale=5.0,
            scheduler=scheduler,
            strength=0.75 if img2img else None,
        )
        return [
            ImageJob(
                request=dataclasses.replace(request, prompt=f"p{k}", num_images=n),
                seed=10 * k,
                init_image=init,
                want_progress=True,
            )
            for k, n in enumerate([2, 1, 1])
        ]

    with _unet_rows(sdxl_runner) as ref_rows:
        reference = sdxl_runner.run(jobs())
    cut = jobs()
    _cancel_at(cut, {1: 1})
    with _unet_rows(sdxl_runner) as rows:
        results = sdxl_runner.run(cut)
    assert rows == [8] + [6] * (len(ref_rows) - 1) and set(ref_rows) == {8}
    assert results[1] is None
    assert _close(results[0], reference[0]) and _close(results[2], reference[2])


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
