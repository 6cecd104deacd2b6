"""Video in the image engine (no Ray): AnimateDiff on the demo SD UNet with the
demo motion adapter, and the demo Stable Video Diffusion pipeline; real
diffusers, CPU. Every clip is checked by decoding the file it came in.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.video.types import VideoRequest, VideoResult
from deployments.errors import InvalidArgument

pytestmark = pytest.mark.slow

SVD_FRAMES = 8  # models/video_demo.py: the demo SVD UNet's num_frames


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[ImageEngine]:
    engine = ImageEngine(
        ImageEngineConfig.model_validate(
            {
                "model": str(demo_models / "image"),
                "device": "cpu",
                # A LoRA on the image UNet: the motion UNet must be a clean copy.
                "loras": [
                    {
                        "name": "demo-style",
                        "path": str(demo_models / "image/loras/demo-style"),
                    }
                ],
                "video": {
                    "motion_adapter": str(demo_models / "video-motion"),
                    "image_to_video": str(demo_models / "video-svd"),
                    "limits": {"default_steps": 2, "max_frames": 24},
                },
            }
        )
    )
    await engine.start()
    yield engine
    await engine.shutdown()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def first_frame() -> bytes:
    pixels = np.zeros((64, 64, 3))
    pixels[16:48, 16:48] = (200, 120, 40)
    return _png(pixels)


def _mp4_frames(data: bytes) -> tuple[list[np.ndarray], Any]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, (stream.codec_context.name, stream.average_rate)


async def test_text_to_video_is_an_mp4_of_the_frames_asked(engine: ImageEngine) -> None:
    result = await engine.generate_video(
        VideoRequest(prompt="a cat", num_frames=6, fps=12, seed=5)
    )
    video = result.video
    frames, (codec, rate) = _mp4_frames(video.data)
    assert video.mime_type == "video/mp4" and codec == "h264" and rate == 12
    assert len(frames) == video.num_frames == 6 and video.fps == 12
    assert frames[0].shape == (64, 64, 3) and (video.width, video.height) == (64, 64)
    assert video.seed == 5
    # A clip, not one picture repeated: the frames differ.
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1


async def test_a_seed_gives_the_same_file_and_another_seed_another(
    engine: ImageEngine,
) -> None:
    def ask(seed: int) -> VideoRequest:
        return VideoRequest(prompt="a boat", num_frames=4, seed=seed, format="gif")

    first = await engine.generate_video(ask(1))
    again = await engine.generate_video(ask(1))
    other = await engine.generate_video(ask(2))
    assert first.video.data == again.video.data
    assert first.video.data != other.video.data


async def test_the_motion_adapter_ties_the_frames_together(
    engine: ImageEngine,
) -> None:
    """Frame 0 of a clip depends on the other frames (temporal attention):
    the same seed's first frame changes when the clip is longer."""
    short = await engine.generate_video(
        VideoRequest(prompt="a dog", num_frames=2, seed=9, format="gif")
    )
    long = await engine.generate_video(
        VideoRequest(prompt="a dog", num_frames=8, seed=9, format="gif")
    )
    first_short = np.asarray(Image.open(io.BytesIO(short.video.data)).convert("RGB"))
    first_long = np.asarray(Image.open(io.BytesIO(long.video.data)).convert("RGB"))
    assert np.abs(first_short.astype(int) - first_long.astype(int)).mean() > 1


async def test_image_to_video_starts_from_the_image(
    engine: ImageEngine, first_frame: bytes
) -> None:
    result = await engine.generate_video(
        VideoRequest(init_image=first_frame, seed=3, format="webp", fps=10)
    )
    video = result.video
    clip = Image.open(io.BytesIO(video.data))
    assert clip.format == "WEBP" and clip.n_frames == video.num_frames == SVD_FRAMES
    clip.load()  # WebP frame info is read with the frame
    assert clip.info["duration"] == 100  # ms per frame at 10 fps
    assert (video.width, video.height) == (64, 64)  # the init image's size
    # The init image conditions the clip: another image, another clip.
    other = await engine.generate_video(
        VideoRequest(init_image=_png(np.full((64, 64, 3), 90)), seed=3, format="webp")
    )
    assert other.video.data != video.data


async def test_interpolation_adds_frames_and_fps(engine: ImageEngine) -> None:
    result = await engine.generate_video(
        VideoRequest(
            prompt="waves", num_frames=4, fps=8, seed=1, interpolation_factor=3
        )
    )
    frames, (_, rate) = _mp4_frames(result.video.data)
    assert len(frames) == result.video.num_frames == (4 - 1) * 3 + 1
    assert rate == result.video.fps == 24
    # A value, not a timing: both parts of the clip's time are reported.
    assert result.encode_seconds > 0 and result.denoise_seconds > 0


async def test_stream_video_reports_steps_and_preview_frames(
    engine: ImageEngine,
) -> None:
    events = [
        event
        async for event in engine.stream_video(
            VideoRequest(prompt="rain", num_frames=8, steps=3, seed=2, preview_every=1)
        )
    ]
    progress, result = events[:-1], events[-1]
    assert isinstance(result, VideoResult)
    assert [p.step for p in progress] == [1, 2, 3]
    # Previews of up to 4 evenly spaced frames, at latent size (VAE scale 2),
    # on every step but the last (the clip itself follows).
    assert [len(p.previews) for p in progress] == [4, 4, 0]
    assert (progress[0].previews[0].width, progress[0].previews[0].height) == (32, 32)


async def test_cancelling_a_stream_stops_the_clip_at_the_next_step(
    engine: ImageEngine,
) -> None:
    """Step 2's UNet call waits until the stream is closed, so the clip
    cannot run ahead of the close: it must end at step 1's end (the close
    came before the worker's last look at step 1) or at step 2's."""
    runner = engine._runner
    assert runner is not None and runner.video is not None
    closed = threading.Event()
    calls: list[int] = []

    def count(*_: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            closed.wait(30)  # never-hang bound

    hook = runner.video.text2video.unet.register_forward_hook(count)
    try:
        stream = engine.stream_video(
            VideoRequest(prompt="slow", num_frames=8, steps=40, seed=1)
        )
        first = await anext(stream)
        assert first.step == 1
        await stream.aclose()
        closed.set()
        # The worker is free once the clip stopped: this runs after it.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(engine._worker, lambda: None)
        # One UNet call per step (the guidance rows ride in one batch).
        assert len(calls) in (1, 2)
    finally:
        hook.remove()
    after = await engine.generate_video(VideoRequest(prompt="next", num_frames=2))
    assert after.video.num_frames == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"num_frames": 1}, "num_frames"),
        ({"num_frames": 25}, "num_frames"),  # max_frames 24 in this config
        ({"fps": 31}, "fps"),
        ({"width": 100}, "width"),
        ({"steps": 51}, "steps"),
        ({"format": "avi"}, "format"),
        ({"interpolation_factor": 5}, "interpolation_factor"),
        ({"interpolation": "magic", "interpolation_factor": 2}, "interpolation"),
        ({"motion_bucket_id": 100}, "motion_bucket_id"),
        ({"prompt": ""}, "prompt"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"quality": 101}, "quality"),
        ({"init_image": b"not an image", "prompt": ""}, "init_image"),
    ],
)
async def test_bad_video_input_names_the_field(
    engine: ImageEngine, fields: dict[str, Any], field: str
) -> None:
    request = VideoRequest(**{"prompt": "x", **fields})
    with pytest.raises(InvalidArgument) as info:
        await engine.generate_video(request)
    assert field in str(info.value)


async def test_image_to_video_refuses_a_prompt(
    engine: ImageEngine, first_frame: bytes
) -> None:
    with pytest.raises(InvalidArgument, match="prompt"):
        await engine.generate_video(VideoRequest(prompt="x", init_image=first_frame))
    with pytest.raises(InvalidArgument, match="motion_bucket_id"):
        await engine.generate_video(
            VideoRequest(init_image=first_frame, motion_bucket_id=300)
        )


async def test_list_models_reports_the_video_limits(engine: ImageEngine) -> None:
    info = engine.limits_info()
    assert "text-to-video" in info["video"] and "image-to-video" in info["video"]
    assert info["video_frames"].startswith("2..24")
    assert info["video_formats"] == "mp4, webp, gif"


async def test_a_model_without_video_refuses_it(demo_models: Path) -> None:
    plain = ImageEngine(
        ImageEngineConfig(model=str(demo_models / "image"), device="cpu")
    )
    await plain.start()
    try:
        assert plain.limits_info()["video"] == "none"
        with pytest.raises(InvalidArgument, match="model"):
            await plain.generate_video(VideoRequest(prompt="x"))
    finally:
        await plain.shutdown()


async def test_seeded_clips_have_cache_keys_with_defaults_filled_in(
    engine: ImageEngine, first_frame: bytes
) -> None:
    from deployments.cache.keys import cache_key

    def key(request: VideoRequest) -> str | None:
        form = engine.cache_form(request)
        return (
            None
            if form is None
            else cache_key(family="image", rpc="V", scope="", form=form)
        )

    assert key(VideoRequest(prompt="x")) is None  # unseeded: not a function of it
    spelled = VideoRequest(prompt="x", seed=1, num_frames=16, fps=8, format="mp4")
    assert key(VideoRequest(prompt="x", seed=1)) == key(spelled)
    assert key(VideoRequest(prompt="x", seed=1, preview_every=2)) == key(spelled)
    assert key(VideoRequest(prompt="x", seed=2)) != key(spelled)
    with_image = VideoRequest(init_image=first_frame, seed=1)
    assert key(with_image) not in (None, key(spelled))
