"""Style presets: named bundles of request settings a request picks by name.

A preset (`args.engine.styles` of an image model) holds a prompt template
and any of negative prompt, LoRAs, scheduler, steps, guidance, IP-Adapter
scale and, per control type, a ControlNet's scale and step range (the maps
themselves come with each request). Applied to a request, every field the
request leaves unset takes the preset's value;
the prompt is the template with `{prompt}` replaced by the request's, and
LoRAs merge by name (the request's weight wins). So a preset is shorthand,
never a limit: the same request with the preset's fields written out gives
the same image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from deployments.engines.image.config import StyleConfig
from deployments.engines.image.controls import ControlChoice
from deployments.engines.image.types import ImageRequest, LoraChoice
from deployments.errors import NotFound

__all__ = ["PROMPT_SLOT", "Style", "apply_style", "styles_of"]

PROMPT_SLOT = "{prompt}"


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = PROMPT_SLOT
    negative_prompt: str = ""
    loras: tuple[LoraChoice, ...] = ()
    scheduler: str = ""
    steps: int = 0
    guidance_scale: float | None = None
    ip_adapter_scale: float | None = None
    # type -> (scale, start, end), each None: the request's or the default
    controls: tuple[tuple[str, float | None, float | None, float | None], ...] = ()


def styles_of(configs: Sequence[StyleConfig]) -> tuple[Style, ...]:
    """The configured presets (`args.engine.styles`) as the engine uses them."""
    return tuple(
        Style(
            name=c.name,
            prompt=c.prompt,
            negative_prompt=c.negative_prompt,
            loras=tuple(LoraChoice(lora.name, lora.weight) for lora in c.loras),
            scheduler=c.scheduler,
            steps=c.steps,
            guidance_scale=c.guidance_scale,
            ip_adapter_scale=c.ip_adapter_scale,
            controls=tuple(
                (k.type, k.scale, k.guidance_start, k.guidance_end) for k in c.controls
            ),
        )
        for c in configs
    )


def _styled_controls(
    controls: tuple[ControlChoice, ...], style: Style
) -> tuple[ControlChoice, ...]:
    presets = {kind: rest for kind, *rest in style.controls}
    styled = []
    for control in controls:
        scale, start, end = presets.get(control.type, (None, None, None))
        styled.append(
            replace(
                control,
                scale=scale if control.scale is None else control.scale,
                start=start if control.start is None else control.start,
                end=end if control.end is None else control.end,
            )
        )
    return tuple(styled)


def _merged_loras(
    preset: tuple[LoraChoice, ...], asked: tuple[LoraChoice, ...]
) -> tuple[LoraChoice, ...]:
    mine = {lora.name for lora in asked}
    return (*(lora for lora in preset if lora.name not in mine), *asked)


def apply_style(request: ImageRequest, styles: Sequence[Style]) -> ImageRequest:
    """`request` with its style's settings where it left a field unset;
    NOT_FOUND for a style the model does not have."""
    if not request.style or not request.prompt.strip():
        return request  # (an empty prompt is refused by `resolve`, as without)
    found = {style.name: style for style in styles}
    style = found.get(request.style)
    if style is None:
        raise NotFound(what="style", name=request.style, available=sorted(found))
    guidance = request.guidance_scale
    return replace(
        request,
        style="",  # applied: what follows is the request written out
        prompt=style.prompt.replace(PROMPT_SLOT, request.prompt),
        negative_prompt=request.negative_prompt or style.negative_prompt,
        loras=_merged_loras(style.loras, request.loras),
        scheduler=request.scheduler or style.scheduler,
        steps=request.steps or style.steps,
        guidance_scale=style.guidance_scale if guidance is None else guidance,
        ip_adapter_scale=style.ip_adapter_scale
        if request.ip_adapter_scale is None and request.ip_adapter_image
        else request.ip_adapter_scale,
        controls=_styled_controls(request.controls, style),
    )
