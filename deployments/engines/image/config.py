"""Settings of the image engine (the `engine:` block of the image application).

Pydantic with `extra="forbid"`: a misspelt key or a bad value fails when the
application is built, naming the field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.engines.base import EngineConfig
from deployments.engines.batching import BatchingConfig
from deployments.engines.image.schedulers import ALL_SCHEDULERS

__all__ = [
    "ControlNetConfig",
    "IpAdapterConfig",
    "ImageEngineConfig",
    "ImageLimitsConfig",
    "LoraConfig",
    "MemoryConfig",
    "StyleConfig",
    "StyleLoraConfig",
    "VideoConfig",
    "VideoLimitsConfig",
]


class LoraConfig(BaseModel):
    """A LoRA adapter loaded at start; requests select it by `name`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Name requests use in `loras`.")
    path: str = Field(description="Folder or file diffusers' load_lora_weights reads.")


class ControlNetConfig(BaseModel):
    """A ControlNet loaded at start; requests pick it by `type` or `name`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Name requests use in `model`.")
    type: str = Field(
        min_length=1,
        description="What its maps are: canny, depth, pose, ... (requests' `type`; "
        "canny maps can be computed by the server).",
    )
    path: str = Field(description="Folder or hub id of a diffusers ControlNetModel.")


class IpAdapterConfig(BaseModel):
    """An IP-Adapter loaded at start (diffusers' `load_ip_adapter`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Folder or hub id holding the weights.")
    weight_name: str = Field(description="The weights file in it.")
    subfolder: str = Field("", description="Folder of the weights inside `path`.")
    image_encoder_folder: str = Field(
        "image_encoder",
        description="The CLIP vision encoder's folder under `path` (or a path "
        "with a slash).",
    )


class StyleLoraConfig(BaseModel):
    """A LoRA of a style preset and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="One of the model's `loras`.")
    weight: float = Field(1.0, ge=-4.0, le=4.0, description="Adapter weight.")


class StyleControlConfig(BaseModel):
    """How a style preset uses a control type the request sends a map for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1, description="The control type (canny, depth...).")
    scale: float | None = Field(
        None, ge=0, le=2, description="Conditioning scale when the request sets none."
    )
    guidance_start: float | None = Field(
        None, ge=0, le=1, description="Start of its step range when unset."
    )
    guidance_end: float | None = Field(
        None, ge=0, le=1, description="End of its step range when unset."
    )


class StyleConfig(BaseModel):
    """A style preset requests pick with `style`; each field set here is
    used where the request leaves it unset (engines/image/styles.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1, max_length=64, description="Name requests use in `style`."
    )
    prompt: str = Field(
        "{prompt}",
        description="Prompt template; `{prompt}` is the request's prompt.",
    )
    negative_prompt: str = Field("", description="When the request sends none.")
    loras: tuple[StyleLoraConfig, ...] = Field(
        (), description="Merged with the request's by name (its weight wins)."
    )
    scheduler: str = Field("", description="When the request names none.")
    steps: int = Field(0, ge=0, description="When the request sends 0.")
    guidance_scale: float | None = Field(
        None, ge=0, le=50, description="When the request sends none."
    )
    ip_adapter_scale: float | None = Field(
        None,
        ge=0,
        le=2,
        description="IP-Adapter scale when the request sends a reference and no scale.",
    )
    controls: tuple[StyleControlConfig, ...] = Field(
        (), description="Settings for the request's controls of these types."
    )

    @model_validator(mode="after")
    def _template(self) -> StyleConfig:
        if "{prompt}" not in self.prompt:
            raise ValueError(
                f"style {self.name!r}: prompt must contain {{prompt}}, "
                f"got {self.prompt!r}"
            )
        if self.scheduler and self.scheduler not in ALL_SCHEDULERS:
            raise ValueError(
                f"style {self.name!r}: scheduler {self.scheduler!r} not in "
                f"{', '.join(ALL_SCHEDULERS)}"
            )
        return self


class ImageLimitsConfig(BaseModel):
    """Request bounds; ListModels reports them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_width: int | None = Field(None, description="Default: model's native.")
    default_height: int | None = Field(None, description="Default: model's native.")
    min_size: int = Field(64, ge=8, description="Smallest width/height.")
    max_size: int = Field(1024, ge=8, description="Largest width/height.")
    max_steps: int = Field(50, ge=1, description="Most denoising steps.")
    default_steps: int = Field(25, ge=1, description="Steps when unset.")
    max_images: int = Field(4, ge=1, description="Most images per request.")
    max_total_pixels: int = Field(
        4 * 1024 * 1024,
        ge=64,
        description="Bound on width x height x num_images. A response carries "
        "at most ~3 bytes per pixel (PNG of noise), so this keeps it under the "
        "receiver's gRPC message limit (4 MiB for generic clients, 64 MiB for "
        "Maestro's).",
    )
    default_guidance_scale: float = Field(7.5, ge=0, description="When unset.")

    @model_validator(mode="after")
    def _consistent(self) -> ImageLimitsConfig:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size {self.min_size} > max_size {self.max_size}")
        if self.default_steps > self.max_steps:
            raise ValueError(
                f"default_steps {self.default_steps} > max_steps {self.max_steps}"
            )
        return self


class MemoryConfig(BaseModel):
    """GPU memory savers (diffusers); each trades some speed for memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attention_slicing: bool = Field(
        False, description="Attention in slices: less peak memory, slower."
    )
    vae_slicing: bool = Field(
        False, description="Decode a batch one image at a time (large batches)."
    )
    vae_tiling: bool = Field(
        False, description="Decode in tiles: large images on small GPUs."
    )
    cpu_offload: bool = Field(
        False,
        description="Keep idle components in CPU RAM, move each to the GPU "
        "when used (enable_model_cpu_offload): much less GPU memory, slower.",
    )


class VideoLimitsConfig(BaseModel):
    """Bounds of video requests (GenerateVideo / StreamVideo); ListModels
    reports them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_size: int = Field(64, ge=8, description="Smallest frame width/height.")
    max_size: int = Field(512, ge=8, description="Largest frame width/height.")
    default_frames: int = Field(
        16,
        ge=1,
        description="Text-to-video frames when unset (image-to-video: "
        "the SVD UNet's own, e.g. 14 or 25).",
    )
    max_frames: int = Field(
        32,
        ge=1,
        description="Most generated frames (AnimateDiff: also at most "
        "its motion adapter's max sequence length).",
    )
    default_fps: int = Field(8, ge=1, description="Frames per second when unset.")
    max_fps: int = Field(30, ge=1, description="Largest fps a request may ask.")
    max_steps: int = Field(50, ge=1, description="Most denoising steps.")
    default_steps: int = Field(25, ge=1, description="Steps when unset.")
    max_interpolation: int = Field(
        4, ge=1, description="Largest frame interpolation factor (1: none)."
    )
    max_total_pixels: int = Field(
        512 * 512 * 64,
        ge=64,
        description="Bound on width x height x output frames (after "
        "interpolation): the decoded clip's memory and the encoder's work.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> VideoLimitsConfig:
        for low, high in (
            ("min_size", "max_size"),
            ("default_frames", "max_frames"),
            ("default_fps", "max_fps"),
            ("default_steps", "max_steps"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"{low} {getattr(self, low)} > {high} {getattr(self, high)}"
                )
        return self


class VideoConfig(BaseModel):
    """Video on an image model: text-to-video with an AnimateDiff motion
    adapter on its UNet, image-to-video with a Stable Video Diffusion pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    motion_adapter: str | None = Field(
        None,
        description="Folder or hub id of an AnimateDiff MotionAdapter for this "
        "model's UNet (SD 1.x): text-to-video. The motion UNet is a copy of the "
        "image UNet plus the adapter (the image UNet's memory again).",
    )
    image_to_video: str | None = Field(
        None,
        description="Folder or hub id of a Stable Video Diffusion pipeline: "
        "image-to-video (requests with init_image).",
    )
    decode_chunk_size: int = Field(
        8, ge=1, description="Frames the VAE decodes at once: lower, less memory."
    )
    limits: VideoLimitsConfig = Field(
        default_factory=VideoLimitsConfig, description="Request bounds."
    )

    @model_validator(mode="after")
    def _something(self) -> VideoConfig:
        if self.motion_adapter is None and self.image_to_video is None:
            raise ValueError("video: set motion_adapter, image_to_video or both")
        return self


class ImageEngineConfig(EngineConfig):
    """Engine settings, validated on start (a wrong key or value fails fast)."""

    model: str = Field(description="Local path or hub id of a diffusers pipeline.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda when available, else cpu."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on cuda, float32 on cpu."
    )
    variant: str | None = Field(None, description="Weights variant, e.g. fp16.")
    default_scheduler: str | None = Field(
        None,
        description="Scheduler when a request names none; unset: the "
        "checkpoint's own (e.g. euler, flow_match_euler). Must suit the "
        "checkpoint (flow-matching models take only flow_match_*).",
    )
    loras: tuple[LoraConfig, ...] = Field((), description="Adapters to load.")
    styles: tuple[StyleConfig, ...] = Field(
        (), description="Style presets requests pick with `style`."
    )
    controlnets: tuple[ControlNetConfig, ...] = Field(
        (), description="ControlNets to load (SD / SDXL UNet models)."
    )
    ip_adapter: IpAdapterConfig | None = Field(
        None, description="An IP-Adapter for reference images (SD / SDXL)."
    )
    limits: ImageLimitsConfig = Field(
        default_factory=ImageLimitsConfig, description="Request bounds."
    )
    video: VideoConfig | None = Field(
        None, description="Text-to-video and image-to-video (GenerateVideo)."
    )
    batching: BatchingConfig = Field(
        default_factory=BatchingConfig,
        description="How compatible requests share a pipeline call.",
    )
    memory: MemoryConfig = Field(
        default_factory=MemoryConfig, description="GPU memory savers."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch; default: torch's own. Process-wide: "
        "torch.set_num_threads for the whole replica (every family in it).",
    )

    @model_validator(mode="after")
    def _known_names(self) -> ImageEngineConfig:
        default = self.default_scheduler
        if default is not None and default not in ALL_SCHEDULERS:
            raise ValueError(
                f"default_scheduler {self.default_scheduler!r} not in "
                f"{', '.join(ALL_SCHEDULERS)}"
            )
        names = [lora.name for lora in self.loras]
        if len(set(names)) != len(names):
            raise ValueError(f"lora names must be unique, got {names}")
        controlnets = [c.name for c in self.controlnets]
        if len(set(controlnets)) != len(controlnets):
            raise ValueError(f"controlnet names must be unique, got {controlnets}")
        styles = [style.name for style in self.styles]
        if len(set(styles)) != len(styles):
            raise ValueError(f"style names must be unique, got {styles}")
        for style in self.styles:
            unknown = [lora.name for lora in style.loras if lora.name not in names]
            if unknown:
                raise ValueError(
                    f"style {style.name!r} names LoRAs {unknown} that are not in "
                    f"loras ({', '.join(names) or 'none'})"
                )
        return self
