"""ControlNet in the image engine (no Ray): the demo UNet with the demo
ControlNet (random weights, non-zero residuals), real diffusers, CPU.

The demo ControlNet is registered twice, as `canny` and as `depth`, so one
checkpoint also drives the multi-ControlNet path and the ready-map rules.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.controls import ControlChoice
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.types import ImageRequest
from deployments.errors import InvalidArgument, NotFound

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[ImageEngine]:
    controlnet = str(demo_models / "image-controlnet")
    engine = ImageEngine(
        ImageEngineConfig.model_validate(
            {
                "model": str(demo_models / "image"),
                "device": "cpu",
                "controlnets": [
                    {"name": "demo-canny", "type": "canny", "path": controlnet},
                    {"name": "demo-depth", "type": "depth", "path": controlnet},
                ],
                "limits": {"default_steps": 3},
                "batching": {"max_batch_size": 4, "max_wait_ms": 200},
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
def photo() -> bytes:
    """A picture with edges: a bright square on a dark ground."""
    pixels = np.zeros((96, 96, 3))
    pixels[24:72, 24:72] = 230
    return _png(pixels)


@pytest.fixture(scope="module")
def other_photo() -> bytes:
    pixels = np.zeros((64, 64, 3))
    pixels[:, 30:34] = 255  # one vertical bar
    return _png(pixels)


def _data(result: Any) -> bytes:
    return result.images[0].data


async def test_the_control_map_reaches_the_unet(
    engine: ImageEngine, photo: bytes, other_photo: bytes
) -> None:
    assert engine._runner is not None
    seen: list[float] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        down, mid = output
        seen.append(float(sum(t.abs().sum() for t in down) + mid.abs().sum()))

    handle = engine._runner.controlnets["demo-canny"].register_forward_hook(hook)
    try:
        canny = ControlChoice(type="canny", image=photo, preprocess=True)
        controlled = await engine.generate(
            ImageRequest(prompt="a box", seed=3, controls=(canny,))
        )
    finally:
        handle.remove()
    # Once per step (cond and uncond rows in one call), residuals non-zero.
    assert len(seen) == 3 and all(total > 0 for total in seen)
    plain = await engine.generate(ImageRequest(prompt="a box", seed=3))
    again = await engine.generate(
        ImageRequest(prompt="a box", seed=3, controls=(canny,))
    )
    other = await engine.generate(
        ImageRequest(
            prompt="a box",
            seed=3,
            controls=(ControlChoice(type="canny", image=other_photo, preprocess=True),),
        )
    )
    assert _data(controlled) != _data(plain)
    assert _data(again) == _data(controlled)  # seeded: reproducible
    assert _data(other) != _data(controlled)  # the map itself matters
    weak = await engine.generate(
        ImageRequest(
            prompt="a box",
            seed=3,
            controls=(
                ControlChoice(type="canny", image=photo, preprocess=True, scale=0),
            ),
        )
    )
    assert _data(weak) == _data(plain)  # scale 0 adds nothing


async def test_two_controlnets_and_shared_batches(
    engine: ImageEngine, photo: bytes, other_photo: bytes
) -> None:
    both = (
        ControlChoice(type="canny", image=photo, preprocess=True),
        ControlChoice(type="depth", image=other_photo, scale=0.5, end=0.5),
    )
    result = await engine.generate(ImageRequest(prompt="a box", seed=4, controls=both))
    single = await engine.generate(
        ImageRequest(prompt="a box", seed=4, controls=both[:1])
    )
    assert _data(result) != _data(single)
    # Different maps, same ControlNets and settings: one pipeline call, once
    # they wait together (behind a running batch; alone, none would wait).
    before = dict(engine.batcher.stats.sizes).get(2, 0)
    busy = asyncio.ensure_future(
        engine.generate(ImageRequest(prompt="busy", seed=1, steps=12))
    )

    async def running() -> None:
        while not engine.batcher.running:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(running(), 30)  # a never-hang bound
    await asyncio.gather(
        *(
            engine.generate(
                ImageRequest(
                    prompt="a box",
                    seed=5,
                    controls=(ControlChoice(type="depth", image=image),),
                )
            )
            for image in (photo, other_photo)
        )
    )
    await busy
    assert dict(engine.batcher.stats.sizes).get(2, 0) == before + 1
    assert (
        engine.limits_info()["controlnets"] == "demo-canny (canny), demo-depth (depth)"
    )


@pytest.mark.parametrize(
    ("control", "error", "says"),
    [
        (ControlChoice(type="pose", image=b"x"), NotFound, "available: canny, depth"),
        (ControlChoice(model="nope", image=b"x"), NotFound, "ControlNet 'nope'"),
        (ControlChoice(type="canny"), InvalidArgument, "controls[0].image"),
        (
            ControlChoice(type="depth", image=b"x", preprocess=True),
            InvalidArgument,
            "controls[0].preprocess",
        ),
        (ControlChoice(type="canny", image=b"x", scale=3), InvalidArgument, "scale"),
        (
            ControlChoice(type="canny", image=b"x", start=0.6, end=0.4),
            InvalidArgument,
            "guidance_start",
        ),
        (ControlChoice(type="canny", image=b"not an image"), InvalidArgument, "image"),
    ],
)
async def test_bad_controls_are_named(
    engine: ImageEngine, control: ControlChoice, error: type, says: str
) -> None:
    with pytest.raises(error, match=says.replace("[", r"\[").replace("]", r"\]")):
        await engine.generate(ImageRequest(prompt="a box", controls=(control,)))


async def test_controls_are_text_to_image_only(
    engine: ImageEngine, photo: bytes
) -> None:
    control = ControlChoice(type="canny", image=photo, preprocess=True)
    with pytest.raises(InvalidArgument, match="init_image"):
        await engine.generate(
            ImageRequest(prompt="a box", init_image=photo, controls=(control,))
        )


async def test_a_controlnet_loaded_at_run_time_serves_its_type(
    engine: ImageEngine, demo_models: Path, other_photo: bytes
) -> None:
    """LoadAdapter with a control type: the demo ControlNet again, as `pose`,
    gives the pixels of the same weights registered as `depth`; unloading it
    makes `pose` unknown again; the configured ones stay."""
    folder = str(demo_models / "image-controlnet")

    def ask(kind: str) -> ImageRequest:
        control = ControlChoice(type=kind, image=other_photo)
        return ImageRequest(prompt="a gate", seed=4, controls=(control,))

    await engine.load_adapter("rt-pose", folder, "pose")
    try:
        assert "rt-pose (pose)" in engine.limits_info()["controlnets"]
        assert "rt-pose" in engine.adapters
        posed = await engine.generate(ask("pose"))
        assert _data(posed) == _data(await engine.generate(ask("depth")))
    finally:
        await engine.unload_adapter("rt-pose")
    with pytest.raises(NotFound, match="available: canny, depth"):
        await engine.generate(ask("pose"))
    with pytest.raises(InvalidArgument, match="name"):  # in the config: stays
        await engine.unload_adapter("demo-canny")
    with pytest.raises(InvalidArgument, match="control_type"):  # said what it is
        await engine.load_adapter("rt-x", folder)
    lora = str(demo_models / "image/loras/demo-style")
    with pytest.raises(InvalidArgument, match="a ControlNet of this model"):
        await engine.load_adapter("rt-y", lora, "pose")
    assert engine.adapters == ("demo-canny", "demo-depth")
