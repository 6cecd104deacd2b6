"""Engine-level image request/response types and their validation.

Pure Python (no torch, no diffusers, no protos) so converters and tests use
them cheaply. Zero or empty fields mean "the server's default", as in the
proto contract; `resolve` turns a request into one with every default filled
in, or raises naming the field and the allowed range.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from deployments.engines.checks import check_count, check_range
from deployments.engines.image.controls import ControlChoice, resolve_controls
from deployments.errors import InvalidArgument, NotFound

__all__ = [
    "FORMATS",
    "EncodedImage",
    "ImageLimits",
    "ImageProgress",
    "ImageRequest",
    "ImageResult",
    "LoraChoice",
    "check_size",
    "resolve",
]

FORMATS = ("png", "jpeg", "webp")
SIZE_MULTIPLE = 8  # SD/SDXL VAEs downsample by 8; UNets need even latents too
MAX_SEED = 2**63 - 1  # the proto's int64
GUIDANCE_RANGE = (0.0, 50.0)
LORA_WEIGHT_RANGE = (-4.0, 4.0)
DEFAULT_QUALITY = 90
DEFAULT_STRENGTH = 0.75
DEFAULT_IP_ADAPTER_SCALE = 0.6
IP_ADAPTER_SCALE_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class LoraChoice:
    """A configured adapter and its weight; weight 0 means the default, 1.0."""

    name: str
    weight: float = 0.0


@dataclass(frozen=True)
class ImageRequest:
    """One generation request as the engine sees it; 0/""/None = default."""

    prompt: str = ""
    negative_prompt: str = ""
    width: int = 0
    height: int = 0
    steps: int = 0
    guidance_scale: float | None = None
    seed: int | None = None
    num_images: int = 0
    scheduler: str = ""
    format: str = ""
    quality: int = 0
    init_image: bytes = b""
    strength: float | None = None
    loras: tuple[LoraChoice, ...] = ()
    preview_every: int = 0
    request_id: str = ""
    style: str = ""  # a preset's name (engines/image/styles.py); "" none
    controls: tuple[ControlChoice, ...] = ()  # ControlNet conditionings
    ip_adapter_image: bytes = b""  # IP-Adapter reference image (encoded)
    ip_adapter_scale: float | None = None


@dataclass(frozen=True)
class ImageLimits:
    """What the served pipeline accepts; reported by ListModels."""

    default_width: int
    default_height: int
    min_size: int = 64
    max_size: int = 1024
    max_steps: int = 50
    default_steps: int = 25
    max_images: int = 4
    max_total_pixels: int = 4 * 1024 * 1024
    default_guidance_scale: float = 7.5
    schedulers: tuple[str, ...] = ()
    default_scheduler: str = "euler"
    loras: tuple[str, ...] = ()
    # Width and height: SIZE_MULTIPLE for UNets, vae scale x patch for DiTs.
    size_multiple: int = SIZE_MULTIPLE
    image_to_image: bool = True  # False: the checkpoint has no img2img pipeline
    controlnets: tuple[tuple[str, str], ...] = ()  # (name, type) configured
    ip_adapter: bool = False  # an IP-Adapter is loaded: reference images work


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    mime_type: str
    width: int
    height: int
    seed: int


@dataclass(frozen=True)
class ImageProgress:
    """After denoising step `step` of `total_steps` (1-based)."""

    step: int
    total_steps: int
    elapsed_seconds: float
    previews: tuple[EncodedImage, ...] = ()


@dataclass(frozen=True)
class ImageResult:
    images: tuple[EncodedImage, ...] = field(default_factory=tuple)


class _SizeBounds(Protocol):
    size_multiple: int
    min_size: int
    max_size: int


def _size_rule(limits: _SizeBounds) -> str:
    return (
        f"a multiple of {limits.size_multiple} in "
        f"{limits.min_size}..{limits.max_size}"
        " (0: default)"
    )


def check_size(name: str, value: int, limits: _SizeBounds) -> None:
    """A width or height within `limits` (images' or videos'), or raise."""
    if value % limits.size_multiple or not limits.min_size <= value <= limits.max_size:
        raise InvalidArgument(field=name, value=value, allowed=_size_rule(limits))


def resolve(
    request: ImageRequest,
    limits: ImageLimits,
    *,
    init_size: tuple[int, int] | None = None,
) -> ImageRequest:
    """`request` with every default filled in; raises on anything out of range.

    `init_size` is the decoded init image's (width, height): with no explicit
    size, image-to-image keeps the init image's size (rounded down to a
    multiple of `limits.size_multiple`).
    """
    if not request.prompt.strip():
        raise InvalidArgument(field="prompt", allowed="a non-empty prompt")
    if request.init_image and not limits.image_to_image:
        raise InvalidArgument(
            field="init_image",
            allowed="empty: this model serves text-to-image only",
        )
    width, height = request.width, request.height
    if init_size is not None:
        multiple = limits.size_multiple
        width = width or init_size[0] // multiple * multiple
        height = height or init_size[1] // multiple * multiple
    width, height = width or limits.default_width, height or limits.default_height
    check_size("width", width, limits)
    check_size("height", height, limits)
    steps = request.steps or limits.default_steps
    check_count(
        "steps",
        steps,
        1,
        limits.max_steps,
        shown=request.steps,
        allowed=f"1..{limits.max_steps} (0: default {limits.default_steps})",
    )
    guidance = request.guidance_scale
    if guidance is None:
        guidance = limits.default_guidance_scale
    lo, hi = GUIDANCE_RANGE
    check_range("guidance_scale", guidance, lo, hi)
    num_images = request.num_images or 1
    check_count(
        "num_images",
        num_images,
        1,
        limits.max_images,
        shown=request.num_images,
        allowed=f"1..{limits.max_images} (0: 1)",
    )
    if width * height * num_images > limits.max_total_pixels:
        raise InvalidArgument(
            field="num_images",
            value=f"{num_images} x {width}x{height}",
            allowed=f"width x height x num_images <= {limits.max_total_pixels} "
            "pixels (keeps a response under the gRPC message limit)",
        )
    seed = request.seed
    if seed is not None and not 0 <= seed <= MAX_SEED - num_images + 1:
        raise InvalidArgument(
            field="seed", value=seed, allowed=f"0..{MAX_SEED} - (num_images - 1)"
        )
    scheduler = request.scheduler or limits.default_scheduler
    if scheduler not in limits.schedulers:
        raise InvalidArgument(
            field="scheduler", value=scheduler, allowed=", ".join(limits.schedulers)
        )
    fmt = request.format or "png"
    if fmt not in FORMATS:
        raise InvalidArgument(field="format", value=fmt, allowed=", ".join(FORMATS))
    quality = request.quality or DEFAULT_QUALITY
    check_count(
        "quality",
        quality,
        1,
        100,
        shown=request.quality,
        allowed="1..100 (0: default 90)",
    )
    strength = _resolve_strength(request, steps)
    if request.preview_every < 0:
        raise InvalidArgument(
            field="preview_every",
            value=request.preview_every,
            allowed="0 (no previews) or a step interval >= 1",
        )
    return replace(
        request,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=guidance,
        num_images=num_images,
        scheduler=scheduler,
        format=fmt,
        quality=quality,
        strength=strength,
        loras=_resolve_loras(request.loras, limits),
        controls=resolve_controls(
            request.controls,
            limits.controlnets,
            image_to_image=bool(request.init_image),
        ),
        ip_adapter_scale=_resolve_ip_adapter(request, limits),
    )


def _resolve_ip_adapter(request: ImageRequest, limits: ImageLimits) -> float | None:
    """The reference image's scale (None without one)."""
    if not request.ip_adapter_image:
        if request.ip_adapter_scale is not None:
            raise InvalidArgument(
                field="ip_adapter_scale",
                value=request.ip_adapter_scale,
                allowed="only with ip_adapter_image",
            )
        return None
    if not limits.ip_adapter:
        raise InvalidArgument(
            field="ip_adapter_image",
            allowed="empty: this model has no ip_adapter configured",
        )
    scale = request.ip_adapter_scale
    scale = DEFAULT_IP_ADAPTER_SCALE if scale is None else float(scale)
    check_range("ip_adapter_scale", scale, *IP_ADAPTER_SCALE_RANGE)
    return scale


def _resolve_strength(request: ImageRequest, steps: int) -> float | None:
    if not request.init_image:
        if request.strength is not None:
            raise InvalidArgument(
                field="strength",
                value=request.strength,
                allowed="only with init_image (image-to-image)",
            )
        return None
    strength = DEFAULT_STRENGTH if request.strength is None else request.strength
    # Image-to-image runs int(steps * strength) steps; it must be at least one.
    low = 1.0 / steps
    check_range(
        "strength",
        strength,
        low,
        1.0,
        allowed=f"[{low:.4g}, 1.0] (at least one of {steps} steps must run)",
    )
    return strength


def _resolve_loras(
    loras: tuple[LoraChoice, ...], limits: ImageLimits
) -> tuple[LoraChoice, ...]:
    seen: set[str] = set()
    resolved = []
    lo, hi = LORA_WEIGHT_RANGE
    for i, lora in enumerate(loras):
        if lora.name not in limits.loras:
            raise NotFound(
                what="LoRA adapter", name=lora.name, available=list(limits.loras)
            )
        if lora.name in seen:
            raise InvalidArgument(
                field=f"loras[{i}].name", value=lora.name, allowed="each adapter once"
            )
        seen.add(lora.name)
        weight = lora.weight or 1.0
        check_range(
            f"loras[{i}].weight",
            weight,
            lo,
            hi,
            allowed=f"[{lo}, {hi}] (0: default 1.0)",
        )
        resolved.append(LoraChoice(lora.name, weight))
    # Sorted: the same set of adapters is the same batch key in any order.
    return tuple(sorted(resolved, key=lambda c: c.name))
