"""Style presets (merged under the request's own fields, checked in config)
and the CLI's ControlNet argument."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.controls import ControlChoice
from deployments.engines.image.styles import Style, apply_style, styles_of
from deployments.engines.image.types import ImageRequest, LoraChoice
from deployments.errors import NotFound

WATERCOLOR = Style(
    name="watercolor",
    prompt="{prompt}, watercolor",
    negative_prompt="photo",
    loras=(LoraChoice("demo-style", 0.8), LoraChoice("grain", 0.3)),
    scheduler="ddim",
    steps=12,
    guidance_scale=6.0,
)


def test_a_preset_fills_what_the_request_leaves_unset() -> None:
    applied = apply_style(
        ImageRequest(prompt="a boat", style="watercolor"), [WATERCOLOR]
    )
    assert applied == ImageRequest(
        prompt="a boat, watercolor",
        negative_prompt="photo",
        loras=WATERCOLOR.loras,
        scheduler="ddim",
        steps=12,
        guidance_scale=6.0,
    )


def test_request_fields_win_and_loras_merge_by_name() -> None:
    request = ImageRequest(
        prompt="a boat",
        style="watercolor",
        negative_prompt="blur",
        scheduler="euler",
        steps=3,
        guidance_scale=0.0,  # set, even though falsy
        loras=(LoraChoice("demo-style", 0.2),),
    )
    applied = apply_style(request, [WATERCOLOR])
    assert (applied.negative_prompt, applied.scheduler, applied.steps) == (
        "blur",
        "euler",
        3,
    )
    assert applied.guidance_scale == 0.0
    assert applied.loras == (LoraChoice("grain", 0.3), LoraChoice("demo-style", 0.2))


def test_no_style_or_an_unknown_one() -> None:
    request = ImageRequest(prompt="a boat")
    assert apply_style(request, [WATERCOLOR]) is request
    with pytest.raises(NotFound, match="style 'oil' not found; available: watercolor"):
        apply_style(ImageRequest(prompt="a boat", style="oil"), [WATERCOLOR])


def _config(**styles_and_loras: object) -> ImageEngineConfig:
    return ImageEngineConfig.model_validate({"model": "m", **styles_and_loras})


def test_config_builds_the_presets() -> None:
    config = _config(
        loras=[{"name": "demo-style", "path": "p"}],
        styles=[
            {
                "name": "watercolor",
                "prompt": "{prompt}, watercolor",
                "loras": [{"name": "demo-style", "weight": 0.8}],
                "steps": 12,
            }
        ],
    )
    (style,) = styles_of(config.styles)
    assert style.loras == (LoraChoice("demo-style", 0.8),)
    assert (style.steps, style.scheduler, style.guidance_scale) == (12, "", None)


@pytest.mark.parametrize(
    ("styles", "says"),
    [
        ([{"name": "a", "prompt": "no slot"}], "must contain {prompt}"),
        ([{"name": "a"}, {"name": "a"}], "unique"),
        ([{"name": "a", "loras": [{"name": "nope"}]}], "not in loras"),
        ([{"name": "a", "scheduler": "warp"}], "scheduler 'warp'"),
        ([{"name": "a", "steps": -1}], "steps"),
    ],
)
def test_bad_presets_fail_at_start(styles: list[dict], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        _config(styles=styles)


def test_cli_control_argument(tmp_path: Path) -> None:
    from maestro.cli_image import parse_control

    edges = tmp_path / "edges.png"
    edges.write_bytes(b"png bytes")
    control = parse_control(f"depth:{edges}:0.8")
    assert (control.type, control.image, control.preprocess) == (
        "depth",
        b"png bytes",
        False,
    )
    assert control.scale == pytest.approx(0.8)
    computed = parse_control(f"canny+:{edges}")
    assert (computed.type, computed.preprocess, computed.HasField("scale")) == (
        "canny",
        True,
        False,
    )
    for bad in ("canny", f"canny:{tmp_path / 'missing.png'}", f"canny:{edges}:x"):
        with pytest.raises(argparse.ArgumentTypeError, match="control"):
            parse_control(bad)


def test_a_preset_sets_control_and_ip_adapter_settings() -> None:
    (style,) = styles_of(
        _config(
            styles=[
                {
                    "name": "layout",
                    "ip_adapter_scale": 0.9,
                    "controls": [{"type": "canny", "scale": 0.5, "guidance_end": 0.8}],
                }
            ]
        ).styles
    )
    request = ImageRequest(
        prompt="a boat",
        style="layout",
        ip_adapter_image=b"ref",
        controls=(
            ControlChoice(type="canny", image=b"map"),
            ControlChoice(type="canny", image=b"map2", scale=1.5),
            ControlChoice(type="depth", image=b"map3"),
        ),
    )
    applied = apply_style(request, [style])
    assert applied.ip_adapter_scale == 0.9
    assert [(c.scale, c.start, c.end) for c in applied.controls] == [
        (0.5, None, 0.8),  # the preset's, where the request left them unset
        (1.5, None, 0.8),  # the request's own scale wins
        (None, None, None),  # no setting for depth in this preset
    ]
    no_reference = apply_style(ImageRequest(prompt="a boat", style="layout"), [style])
    assert no_reference.ip_adapter_scale is None  # a scale alone would be refused
