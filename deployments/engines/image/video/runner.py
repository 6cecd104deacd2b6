"""The diffusers side of video: load the video pipelines, run one clip.

Blocking; runs on the image engine's single worker thread, between image
batches (one pipeline computes at a time). A clip is one pipeline call of its
own: videos are not batched with each other (a clip already fills the UNet
with its frames, and its memory grows with them).

- Text-to-video is diffusers' `AnimateDiffPipeline` over the image model's
  own VAE, text encoder and tokenizer; its UNet is a `UNetMotionModel` made
  from a clean copy of the image UNet (before LoRAs or an IP-Adapter touch
  it) plus the motion adapter.
- Image-to-video is diffusers' `StableVideoDiffusionPipeline`, its own
  checkpoint.

Cancellation stops at the next step: the step callback raises `_Stopped`,
which ends the pipeline call there (no VAE decode of a clip nobody wants).
Neither pipeline keeps state between calls that this could leave half-done:
each call gets a fresh scheduler.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployments.engines.image.config import ImageEngineConfig, VideoConfig
from deployments.engines.image.previews import latent_previews, latent_rgb
from deployments.engines.image.video.types import VideoLimits, VideoRequest

__all__ = ["MAX_PREVIEW_FRAMES", "VideoJob", "VideoRunner", "load_video_runner"]

MAX_PREVIEW_FRAMES = 4  # previews show this many evenly spaced frames


class _Stopped(Exception):
    """Raised from the step callback: the clip's request was cancelled."""


@dataclass(eq=False)
class VideoJob:
    """One video request in flight (see `engines.image.pipeline.ImageJob`)."""

    request: VideoRequest
    seed: int
    init_image: Any = None  # PIL image at the request's size, image-to-video
    want_progress: bool = False
    on_step: Callable[[int, int, list[np.ndarray]], None] | None = None
    submitted: float = field(default_factory=time.monotonic)
    events: asyncio.Queue[Any] | None = None
    answered: bool = False  # the engine gave its result or error
    _cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()


def load_video_runner(
    c: ImageEngineConfig, text2img: Any, device: str, dtype: Any
) -> VideoRunner:
    """The configured video pipelines; call before anything patches the image
    UNet (LoRAs, IP-Adapter), since the motion UNet copies it."""
    video = c.video
    assert video is not None
    text2video = image2video = None
    if video.motion_adapter is not None:
        text2video = _text_to_video(c, video, text2img, device, dtype)
    if video.image_to_video is not None:
        image2video = _image_to_video(c, video, device, dtype)
    return VideoRunner(text2video, image2video, video)


def _text_to_video(
    c: ImageEngineConfig, video: VideoConfig, text2img: Any, device: str, dtype: Any
) -> Any:
    from diffusers import AnimateDiffPipeline, MotionAdapter

    if getattr(text2img, "unet", None) is None or not hasattr(text2img, "tokenizer"):
        raise RuntimeError(
            f"{c.model}: {type(text2img).__name__} has no SD UNet for a motion "
            "adapter; remove video.motion_adapter from this model's config"
        )
    if c.memory.cpu_offload:
        raise RuntimeError(
            f"{c.model}: video.motion_adapter shares the image pipeline's "
            "components, which memory.cpu_offload moves; use one or the other"
        )
    adapter = MotionAdapter.from_pretrained(video.motion_adapter, dtype=dtype)
    try:
        pipe = AnimateDiffPipeline.from_pipe(text2img, motion_adapter=adapter)
    except Exception as exc:
        raise RuntimeError(
            f"motion adapter {video.motion_adapter} does not fit {c.model}'s "
            f"UNet: {exc}"
        ) from exc
    pipe.unet.to(device=device, dtype=dtype)  # a new module, made in float32
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image_to_video(
    c: ImageEngineConfig, video: VideoConfig, device: str, dtype: Any
) -> Any:
    from diffusers import StableVideoDiffusionPipeline

    assert video.image_to_video is not None
    pipe = StableVideoDiffusionPipeline.from_pretrained(
        video.image_to_video, dtype=dtype, variant=c.variant
    )
    if c.memory.cpu_offload and device == "cuda":
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class VideoRunner:
    """Owns the video pipelines; `run` makes one clip (blocking)."""

    def __init__(self, text2video: Any, image2video: Any, config: VideoConfig) -> None:
        self.text2video, self.image2video = text2video, image2video
        self.config = config
        self._schedulers = {
            id(pipe): (type(pipe.scheduler), pipe.scheduler.config)
            for pipe in (text2video, image2video)
            if pipe is not None
        }

    def use_text_scheduler(self, scheduler: Any) -> None:
        """Text-to-video samples with this (the image model's default
        scheduler, e.g. `default_scheduler: ddim`), fresh per clip."""
        if self.text2video is not None:
            self._schedulers[id(self.text2video)] = (type(scheduler), scheduler.config)

    def limits(self) -> VideoLimits:
        lim = self.config.limits
        max_frames = lim.max_frames
        t2v, i2v = self.text2video, self.image2video
        if t2v is not None:  # positional embeddings cover this many frames
            max_frames = min(
                max_frames, int(t2v.motion_adapter.config.motion_max_seq_length)
            )
        native = _native_size(t2v if t2v is not None else i2v)
        return VideoLimits(
            text_to_video=t2v is not None,
            image_to_video=i2v is not None,
            default_width=min(max(native, lim.min_size), lim.max_size),
            default_height=min(max(native, lim.min_size), lim.max_size),
            min_size=lim.min_size,
            max_size=lim.max_size,
            default_frames=lim.default_frames,
            image_to_video_frames=int(i2v.unet.config.num_frames)
            if i2v is not None
            else lim.default_frames,
            max_frames=max_frames,
            default_fps=lim.default_fps,
            max_fps=lim.max_fps,
            max_steps=lim.max_steps,
            default_steps=lim.default_steps,
            max_interpolation=lim.max_interpolation,
            max_total_pixels=lim.max_total_pixels,
        )

    def modules(self) -> list[Any]:
        """The modules only video uses (for the engine's memory figure)."""
        out: list[Any] = []
        if self.text2video is not None:
            out += [self.text2video.unet]
        if self.image2video is not None:
            pipe = self.image2video
            out += [c for c in pipe.components.values() if hasattr(c, "parameters")]
        return out

    def run(self, job: VideoJob) -> np.ndarray | None:
        """The clip's frames (F x H x W x 3 uint8), or None if cancelled."""
        import torch

        r = job.request
        to_video = job.init_image is not None
        pipe = self.image2video if to_video else self.text2video
        assert pipe is not None, "resolve_video refuses a mode the model lacks"
        kind, config = self._schedulers[id(pipe)]
        pipe.scheduler = kind.from_config(config)  # per-run state starts fresh
        generator = torch.Generator().manual_seed(job.seed)
        common: dict[str, Any] = {
            "height": r.height,
            "width": r.width,
            "num_frames": r.num_frames,
            "num_inference_steps": r.steps,
            "generator": generator,
            "output_type": "np",
            "decode_chunk_size": self.config.decode_chunk_size,
            "callback_on_step_end": self._step_callback(job, pipe, to_video),
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if to_video:
            common.update(
                image=job.init_image,
                fps=r.fps,
                motion_bucket_id=r.motion_bucket_id,
                noise_aug_strength=r.noise_aug_strength,
                max_guidance_scale=r.guidance_scale,
                # SVD ramps guidance from min to max over the frames; a max
                # below its min of 1 means "no guidance" for every frame.
                min_guidance_scale=min(1.0, r.guidance_scale),
            )
        else:
            common.update(
                prompt=r.prompt,
                negative_prompt=r.negative_prompt or None,
                guidance_scale=r.guidance_scale,
            )
        try:
            with torch.inference_mode():
                output = pipe(**common)
        except _Stopped:
            return None
        frames = np.asarray(output.frames[0])
        return (frames * 255).round().clip(0, 255).astype(np.uint8)

    def _step_callback(
        self, job: VideoJob, pipe: Any, to_video: bool
    ) -> Callable[..., dict[str, Any]]:
        rgb = latent_rgb(pipe)

        def on_step_end(
            pipe: Any, i: int, t: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            if job.cancelled:
                raise _Stopped
            if job.want_progress and job.on_step is not None:
                total, step = pipe.num_timesteps, i + 1
                every = job.request.preview_every
                previews: list[np.ndarray] = []
                if every and step % every == 0 and step < total:
                    latents = tensors["latents"][0].float().cpu().numpy()
                    if not to_video:  # AnimateDiff: channels x frames x h x w
                        latents = latents.transpose(1, 0, 2, 3)
                    picked = np.linspace(
                        0, len(latents) - 1, min(MAX_PREVIEW_FRAMES, len(latents))
                    )
                    previews = latent_previews(latents[picked.round().astype(int)], rgb)
                job.on_step(step, total, previews)
            if job.cancelled:  # cancelled while this step was reported
                raise _Stopped
            return tensors

        return on_step_end


def _native_size(pipe: Any) -> int:
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
