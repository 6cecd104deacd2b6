"""ControlNet conditionings of an image request: which ControlNet, how strong,
over which share of the steps, and the control map itself.

A request names a control by `type` (the model's ControlNet of that type) or
by `model` (a ControlNet's name). `resolve_controls` checks them against the
model's configured ControlNets; `control_map` decodes the image, computes a
canny edge map when asked (OpenCV, imported when first used) and resizes it to
the request's size. Pure Python apart from those decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from deployments.engines.checks import check_range
from deployments.errors import InvalidArgument, NotFound

__all__ = [
    "CANNY",
    "MAX_CONTROLS",
    "SCALE_RANGE",
    "ControlChoice",
    "control_map",
    "resolve_controls",
]

CANNY = "canny"
MAX_CONTROLS = 3
SCALE_RANGE = (0.0, 2.0)
CANNY_THRESHOLDS = (100, 200)  # OpenCV's low / high hysteresis thresholds


@dataclass(frozen=True)
class ControlChoice:
    """One control as sent (None / "": default); `resolve_controls` fills in
    `model` (the ControlNet's name), scale, start and end."""

    type: str = ""
    image: bytes = b""
    preprocess: bool = False
    scale: float | None = None
    start: float | None = None
    end: float | None = None
    model: str = ""


def _pick(
    i: int, control: ControlChoice, controlnets: Sequence[tuple[str, str]]
) -> str:
    """The ControlNet's name for `control` (by name, else by type)."""
    types = {name: kind for name, kind in controlnets}
    if control.model:
        if control.model not in types:
            raise NotFound(what="ControlNet", name=control.model, available=list(types))
        if control.type and control.type != types[control.model]:
            raise InvalidArgument(
                field=f"controls[{i}].type",
                value=control.type,
                allowed=f"{types[control.model]} (the type of {control.model}) "
                "or empty",
            )
        return control.model
    for name, kind in controlnets:
        if kind == control.type:
            return name
    raise NotFound(
        what="control type",
        name=control.type,
        available=sorted({kind for _, kind in controlnets}),
    )


def resolve_controls(
    controls: Sequence[ControlChoice],
    controlnets: Sequence[tuple[str, str]],
    *,
    image_to_image: bool,
) -> tuple[ControlChoice, ...]:
    """Every control with its ControlNet and defaults; raises naming the field."""
    if not controls:
        return ()
    if image_to_image:
        raise InvalidArgument(
            field="controls", allowed="none with init_image (text-to-image only)"
        )
    if len(controls) > MAX_CONTROLS:
        raise InvalidArgument(
            field="controls", value=len(controls), allowed=f"at most {MAX_CONTROLS}"
        )
    resolved: list[ControlChoice] = []
    for i, control in enumerate(controls):
        name = _pick(i, control, controlnets)
        if name in (c.model for c in resolved):
            raise InvalidArgument(
                field=f"controls[{i}]", value=name, allowed="each ControlNet once"
            )
        if not control.image:
            raise InvalidArgument(
                field=f"controls[{i}].image",
                allowed="an encoded image (PNG, JPEG, WebP)",
            )
        kind = dict(controlnets)[name]
        if control.preprocess and kind != CANNY:
            raise InvalidArgument(
                field=f"controls[{i}].preprocess",
                value=True,
                allowed=f"false for {kind}: send the ready map (only canny maps "
                "are computed by the server)",
            )
        scale = 1.0 if control.scale is None else float(control.scale)
        check_range(f"controls[{i}].scale", scale, *SCALE_RANGE)
        start = 0.0 if control.start is None else float(control.start)
        end = 1.0 if control.end is None else float(control.end)
        if not 0.0 <= start < end <= 1.0:
            raise InvalidArgument(
                field=f"controls[{i}].guidance_start",
                value=f"{start}..{end}",
                allowed="0 <= guidance_start < guidance_end <= 1",
            )
        resolved.append(
            replace(control, type=kind, model=name, scale=scale, start=start, end=end)
        )
    return tuple(resolved)


def control_map(
    control: ControlChoice, size: tuple[int, int], *, index: int, max_pixels: int
) -> Any:
    """The control's map as an RGB PIL image of `size` (width, height):
    decoded, edge-detected when `preprocess` (canny), resized to fit."""
    from deployments.engines.image.encoding import decode_image

    image = decode_image(
        control.image, field=f"controls[{index}].image", max_pixels=max_pixels
    )
    if control.preprocess:
        image = _canny(image)
    if image.size != size:
        image = image.resize(size)
    return image.convert("RGB")


def _canny(image: Any) -> Any:
    import cv2
    import numpy as np
    from PIL import Image

    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, *CANNY_THRESHOLDS)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))
