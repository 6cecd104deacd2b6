"""IP-Adapter in the image engine (no Ray): the demo UNet with the demo
IP-Adapter (random weights, a tiny CLIP vision encoder), real diffusers, CPU."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.types import ImageRequest, ImageResult
from deployments.errors import InvalidArgument
from models.image_demo import IP_ADAPTER_WEIGHTS

pytestmark = pytest.mark.slow


async def _engine(demo_models: Path, **extra: object) -> ImageEngine:
    engine = ImageEngine(
        ImageEngineConfig.model_validate(
            {
                "model": str(demo_models / "image"),
                "device": "cpu",
                "limits": {"default_steps": 3},
                **extra,
            }
        )
    )
    await engine.start()
    return engine


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[ImageEngine]:
    ip = {
        "path": str(demo_models / "image-ip-adapter"),
        "weight_name": IP_ADAPTER_WEIGHTS,
    }
    engine = await _engine(demo_models, ip_adapter=ip)
    yield engine
    await engine.shutdown()


def _reference(rgb: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _data(result: ImageResult) -> bytes:
    return result.images[0].data


async def test_a_reference_image_steers_the_result(engine: ImageEngine) -> None:
    red, blue = _reference((255, 0, 0)), _reference((0, 0, 255))
    plain = await engine.generate(ImageRequest(prompt="a box", seed=2))
    with_red = await engine.generate(
        ImageRequest(prompt="a box", seed=2, ip_adapter_image=red)
    )
    again = await engine.generate(
        ImageRequest(prompt="a box", seed=2, ip_adapter_image=red)
    )
    with_blue = await engine.generate(
        ImageRequest(prompt="a box", seed=2, ip_adapter_image=blue)
    )
    unscaled = await engine.generate(
        ImageRequest(prompt="a box", seed=2, ip_adapter_image=red, ip_adapter_scale=0)
    )
    assert _data(with_red) != _data(plain)
    assert _data(again) == _data(with_red)  # seeded: reproducible
    assert _data(with_blue) != _data(with_red)  # the reference itself matters
    assert _data(unscaled) == _data(plain)  # scale 0 adds nothing
    assert engine.limits_info()["ip_adapter"] == "scale 0.0..2.0 (default 0.6)"


async def test_loading_the_adapter_leaves_plain_requests_alone(
    engine: ImageEngine, demo_models: Path
) -> None:
    """A request without a reference runs at scale 0 with a blank one: the
    same pixels as on an engine that never loaded the adapter."""
    without = await _engine(demo_models)
    try:
        request = ImageRequest(prompt="a lighthouse", seed=4)
        theirs = np.asarray(
            Image.open(io.BytesIO(_data(await without.generate(request))))
        )
        ours = np.asarray(Image.open(io.BytesIO(_data(await engine.generate(request)))))
        assert np.array_equal(theirs, ours)
        with pytest.raises(InvalidArgument, match="no ip_adapter configured"):
            await without.generate(
                ImageRequest(prompt="a box", ip_adapter_image=_reference((1, 2, 3)))
            )
    finally:
        await without.shutdown()


@pytest.mark.parametrize(
    ("request_fields", "says"),
    [
        ({"ip_adapter_scale": 0.5}, "only with ip_adapter_image"),
        ({"ip_adapter_image": b"png?", "ip_adapter_scale": 3.0}, "ip_adapter_scale"),
        ({"ip_adapter_image": b"not an image"}, "ip_adapter_image"),
    ],
)
async def test_bad_references_are_named(
    engine: ImageEngine, request_fields: dict, says: str
) -> None:
    with pytest.raises(InvalidArgument, match=says):
        await engine.generate(ImageRequest(prompt="a box", **request_fields))
