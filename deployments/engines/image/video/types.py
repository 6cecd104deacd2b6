"""Engine-level video request/response types and their validation.

Pure Python like `engines.image.types`: zero or empty fields take the
server's defaults, and `resolve_video` fills them in or raises naming the
field and the allowed range. Two modes, chosen by the request:

- text-to-video (no `init_image`): AnimateDiff, the model's motion adapter
  on its own UNet, steered by the prompt;
- image-to-video (`init_image`): Stable Video Diffusion, steered by the image
  alone (SVD has no text encoder), so a prompt is refused, not ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from deployments.engines.checks import check_count, check_range
from deployments.engines.image.types import (
    GUIDANCE_RANGE,
    MAX_SEED,
    SIZE_MULTIPLE,
    check_size,
)
from deployments.errors import InvalidArgument

__all__ = [
    "INTERPOLATIONS",
    "VIDEO_FORMATS",
    "EncodedVideo",
    "VideoLimits",
    "VideoRequest",
    "VideoResult",
    "resolve_video",
]

VIDEO_FORMATS = ("mp4", "webp", "gif")  # the first is the default
INTERPOLATIONS = ("flow", "blend")  # the first is the default
DEFAULT_VIDEO_QUALITY = 60  # MP4: CRF 20 (encoding.py)
MOTION_BUCKET_RANGE = (0, 255)  # SVD's micro-conditioning on motion
DEFAULT_MOTION_BUCKET = 127  # SVD's own default
DEFAULT_NOISE_AUG = 0.02  # SVD's own default


@dataclass(frozen=True)
class VideoRequest:
    """One video request as the engine sees it; 0/""/None = default."""

    prompt: str = ""
    negative_prompt: str = ""
    width: int = 0
    height: int = 0
    steps: int = 0
    guidance_scale: float | None = None
    seed: int | None = None
    num_frames: int = 0
    fps: int = 0
    format: str = ""
    quality: int = 0
    init_image: bytes = b""  # image-to-video (SVD)
    motion_bucket_id: int | None = None  # SVD: more is more motion
    noise_aug_strength: float | None = None  # SVD: noise on the init image
    interpolation_factor: int = 0  # output frames per generated frame step
    interpolation: str = ""  # flow | blend
    preview_every: int = 0
    request_id: str = ""


@dataclass(frozen=True)
class VideoLimits:
    """What the model's video pipelines accept; reported by ListModels."""

    text_to_video: bool
    image_to_video: bool
    default_width: int
    default_height: int
    min_size: int = 64
    max_size: int = 512
    default_frames: int = 16
    image_to_video_frames: int = 14  # SVD's UNet's own clip length
    max_frames: int = 32
    default_fps: int = 8
    max_fps: int = 30
    max_steps: int = 50
    default_steps: int = 25
    max_interpolation: int = 4
    max_total_pixels: int = 512 * 512 * 64
    size_multiple: int = SIZE_MULTIPLE  # the VAEs of SD and SVD downsample by 8
    default_guidance_scale: float = 7.5  # AnimateDiff's
    image_to_video_guidance_scale: float = 3.0  # SVD's max_guidance_scale


@dataclass(frozen=True)
class EncodedVideo:
    data: bytes
    mime_type: str
    width: int
    height: int
    num_frames: int  # in the file (after interpolation)
    fps: int  # of the file
    seed: int


@dataclass(frozen=True)
class VideoResult:
    video: EncodedVideo
    denoise_seconds: float = 0.0  # the pipeline call (denoising and VAE decode)
    encode_seconds: float = 0.0  # interpolation and the container's encoder


def resolve_video(
    request: VideoRequest,
    limits: VideoLimits,
    *,
    init_size: tuple[int, int] | None = None,
) -> VideoRequest:
    """`request` with every default filled in; raises on anything out of range.

    `init_size` is the decoded init image's (width, height): with no explicit
    size, image-to-video keeps it (rounded down to a multiple of 8).
    """
    to_video = bool(request.init_image)
    _check_mode(request, limits, to_video)
    width, height = request.width, request.height
    if init_size is not None:
        width = width or init_size[0] // SIZE_MULTIPLE * SIZE_MULTIPLE
        height = height or init_size[1] // SIZE_MULTIPLE * SIZE_MULTIPLE
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
        guidance = (
            limits.image_to_video_guidance_scale
            if to_video
            else limits.default_guidance_scale
        )
    check_range("guidance_scale", guidance, *GUIDANCE_RANGE)
    default_frames = limits.image_to_video_frames if to_video else limits.default_frames
    frames = request.num_frames or min(default_frames, limits.max_frames)
    check_count(
        "num_frames",
        frames,
        2,
        limits.max_frames,
        shown=request.num_frames,
        allowed=f"2..{limits.max_frames} (0: default {default_frames})",
    )
    fps = request.fps or limits.default_fps
    check_count(
        "fps",
        fps,
        1,
        limits.max_fps,
        shown=request.fps,
        allowed=f"1..{limits.max_fps} (0: default {limits.default_fps})",
    )
    factor = request.interpolation_factor or 1
    check_count(
        "interpolation_factor",
        factor,
        1,
        limits.max_interpolation,
        shown=request.interpolation_factor,
        allowed=f"1..{limits.max_interpolation} (0 or 1: none)",
    )
    method = request.interpolation or INTERPOLATIONS[0]
    if method not in INTERPOLATIONS:
        raise InvalidArgument(
            field="interpolation", value=method, allowed=", ".join(INTERPOLATIONS)
        )
    out_frames = (frames - 1) * factor + 1
    if width * height * out_frames > limits.max_total_pixels:
        raise InvalidArgument(
            field="num_frames",
            value=f"{out_frames} frames of {width}x{height}",
            allowed=f"width x height x output frames <= {limits.max_total_pixels}"
            " pixels (output frames: (num_frames - 1) x interpolation_factor + 1)",
        )
    seed = request.seed
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InvalidArgument(field="seed", value=seed, allowed=f"0..{MAX_SEED}")
    fmt = request.format or VIDEO_FORMATS[0]
    if fmt not in VIDEO_FORMATS:
        raise InvalidArgument(
            field="format", value=fmt, allowed=", ".join(VIDEO_FORMATS)
        )
    quality = request.quality or DEFAULT_VIDEO_QUALITY
    check_count(
        "quality",
        quality,
        1,
        100,
        shown=request.quality,
        allowed=f"1..100 (0: default {DEFAULT_VIDEO_QUALITY})",
    )
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
        num_frames=frames,
        fps=fps,
        format=fmt,
        quality=quality,
        interpolation_factor=factor,
        interpolation=method,
        **_svd_settings(request, to_video),
    )


def _check_mode(request: VideoRequest, limits: VideoLimits, to_video: bool) -> None:
    """The request's mode exists on this model; its fields suit the mode."""
    if to_video:
        if not limits.image_to_video:
            raise InvalidArgument(
                field="init_image",
                allowed="empty: this model has no image-to-video "
                "(video.image_to_video)",
            )
        for name in ("prompt", "negative_prompt"):
            if getattr(request, name):
                raise InvalidArgument(
                    field=name,
                    allowed="empty with init_image: Stable Video Diffusion is "
                    "steered by the image alone",
                )
        return
    if not limits.text_to_video:
        raise InvalidArgument(
            field="init_image",
            allowed="an image: this model has image-to-video only "
            "(no video.motion_adapter)",
        )
    if not request.prompt.strip():
        raise InvalidArgument(field="prompt", allowed="a non-empty prompt")
    for name in ("motion_bucket_id", "noise_aug_strength"):
        if getattr(request, name) is not None:
            raise InvalidArgument(
                field=name,
                value=getattr(request, name),
                allowed="only with init_image (image-to-video)",
            )


def _svd_settings(request: VideoRequest, to_video: bool) -> dict[str, object]:
    if not to_video:
        return {}
    motion = request.motion_bucket_id
    motion = DEFAULT_MOTION_BUCKET if motion is None else motion
    check_count("motion_bucket_id", motion, *MOTION_BUCKET_RANGE)
    noise = request.noise_aug_strength
    noise = DEFAULT_NOISE_AUG if noise is None else float(noise)
    check_range("noise_aug_strength", noise, 0.0, 1.0)
    return {"motion_bucket_id": motion, "noise_aug_strength": noise}
