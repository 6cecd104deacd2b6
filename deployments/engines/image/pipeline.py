"""The diffusers side of the image engine: load, configure and run one batch.

Everything here is blocking and runs on the engine's single worker thread.
Text-to-image and image-to-image are two pipeline objects over the *same*
components (`from_pipe`), so the checkpoint and its LoRA layers are in memory
once. A batch owns the pipeline for its whole run: it sets the scheduler and
the adapter state (which adapters, which weights, or none) before it starts,
so nothing of one batch's adapters reaches another's images.

Cancellation is per row. A cancelled request is answered at once by the
engine and gets no more progress; at the next step-end callback its rows are
cut out of the batch (latents, conditioning, scheduler history, generators:
see `rows`), so every later UNet call runs on fewer rows and the other
requests finish normally. Their images can differ from an uncancelled run in
low-order bits only, as with any change of batch-mates: kernels are not
batch-invariant. When every request of a batch is cancelled the batch is cut
to one row and the pipeline is interrupted (diffusers' `_interrupt`), so only
that row is decoded. Where rows cannot be cut safely (a pipeline or scheduler
`rows` does not know, a UNet with a guidance embedding) the cancelled
rows are masked instead: they compute until the batch ends and are thrown
away; a batch whose requests are all cancelled is still interrupted. Stable
Diffusion 3 (a transformer backbone) is such a pipeline: it always masks.

Without an image-to-image pipeline for the checkpoint (no AutoPipeline
mapping) `img2img` is None and requests with an init image are refused
before they reach a batch (`ImageLimits.image_to_image`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployments.engines.image.previews import latent_previews, latent_rgb
from deployments.engines.image.rows import PIPELINE_TENSORS, drop_rows, row_tensors
from deployments.engines.image.schedulers import SCHEDULERS, build_scheduler
from deployments.engines.image.types import ImageRequest

__all__ = ["SCHEDULERS", "BatchKey", "ImageJob", "PipelineRunner", "batch_key"]

logger = logging.getLogger(__name__)

# Requests whose key is equal can share one pipeline call.
BatchKey = tuple[Any, ...]


def batch_key(request: ImageRequest, init_size: tuple[int, int] | None) -> BatchKey:
    """Everything diffusers applies to a whole batch, not per row."""
    return (
        request.width,
        request.height,
        request.steps,
        request.guidance_scale,
        request.scheduler,
        request.loras,
        request.strength,  # None for text-to-image: never mixed with img2img
        init_size is not None,
        # The ControlNets and how they act; each row brings its own map.
        tuple((c.model, c.scale, c.start, c.end) for c in request.controls),
        # diffusers gives a batch one IP-Adapter reference (per-row images
        # would be read as several images for every row), so one per batch.
        request.ip_adapter_scale,
        request.ip_adapter_image,
    )


@dataclass(frozen=True)
class StepDone:
    """A denoising step finished for the job (previews: HxWx3 uint8 arrays)."""

    step: int
    total: int
    previews: list[np.ndarray]


@dataclass(frozen=True)
class PixelsReady:
    """The job's images, decoded, as HxWx3 uint8 arrays."""

    pixels: list[np.ndarray]


@dataclass(frozen=True)
class JobFailed:
    """The job's batch raised; the request fails with this error."""

    error: BaseException


# What the engine's per-request queue carries, worker -> event loop.
JobEvent = StepDone | PixelsReady | JobFailed


@dataclass(eq=False)
class ImageJob:
    """One request in flight: its resolved parameters and its reporting hooks.

    `on_step(step, total, previews)` is called on the worker thread after each
    step the request is still wanted for; previews are HxWx3 uint8 arrays.
    """

    request: ImageRequest
    seed: int
    init_image: Any = None  # PIL image at the request's size, img2img only
    control_images: tuple[Any, ...] = ()  # PIL maps, one per request.controls
    ip_image: Any = None  # PIL IP-Adapter reference, when the request has one
    want_progress: bool = False
    on_step: Callable[[int, int, list[np.ndarray]], None] | None = None
    submitted: float = field(default_factory=time.monotonic)
    # The engine's per-request queue (event-loop side).
    events: asyncio.Queue[JobEvent] | None = None
    answered: bool = False  # the engine gave its result or error
    _cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> BatchKey:
        size = None if self.init_image is None else self.init_image.size
        return batch_key(self.request, size)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()


def _control_kwargs(
    first: ImageRequest, rows: list[tuple[ImageJob, int]]
) -> dict[str, Any]:
    """The ControlNet pipeline's arguments: every row's maps and the batch's
    shared settings. diffusers takes one map per row for one ControlNet and,
    for several, per row a list of maps (one per ControlNet, in order)."""
    maps = [list(job.control_images) for job, _ in rows]
    scales = [c.scale for c in first.controls]
    starts = [c.start for c in first.controls]
    ends = [c.end for c in first.controls]
    if len(first.controls) == 1:  # and plain values, not lists, for one
        return {
            "image": [row[0] for row in maps],
            "controlnet_conditioning_scale": scales[0],
            "control_guidance_start": starts[0],
            "control_guidance_end": ends[0],
        }
    return {
        "image": maps,
        "controlnet_conditioning_scale": scales,
        "control_guidance_start": starts,
        "control_guidance_end": ends,
    }


class PipelineRunner:
    """Owns the diffusers pipelines; `run` executes one batch (blocking)."""

    def __init__(self, text2img: Any, img2img: Any | None, *, device: str) -> None:
        self.text2img, self.img2img, self.device = text2img, img2img, device
        self._base_scheduler_config = text2img.scheduler.config
        self._adapters: tuple[str, ...] = ()
        self.controlnets: dict[str, Any] = {}  # name -> ControlNetModel
        # With an IP-Adapter loaded the UNet wants image embeds on every call:
        # batches without a reference get a blank one at scale 0, which adds
        # exactly nothing (the IP attention is scaled by 0).
        unet = getattr(text2img, "unet", None)  # None for DiTs (SD3)
        self.ip_adapter = getattr(unet, "encoder_hid_proj", None) is not None
        self._blank = None
        self.video: Any = None  # a video.runner.VideoRunner when configured
        self._control_pipes: dict[tuple[str, ...], Any] = {}
        self._rgb = latent_rgb(text2img)
        for pipe in (text2img, img2img):
            name = type(pipe).__name__
            if pipe is not None and name not in PIPELINE_TENSORS:
                logger.info(
                    "%s: cancelled rows are masked (computed to the end, thrown "
                    "away), not cut: rows.py does not know its loop tensors",
                    name,
                )

    def _blank_image(self) -> Any:
        if self._blank is None:
            from PIL import Image

            self._blank = Image.new("RGB", (64, 64))
        return self._blank

    def add_controlnet(self, name: str, model: Any) -> None:
        self.controlnets[name] = model

    def remove_controlnet(self, name: str) -> None:
        """Forget a ControlNet and every pipeline made with it."""
        self.controlnets.pop(name, None)
        for names in [n for n in self._control_pipes if name in n]:
            del self._control_pipes[names]

    def control_pipe(self, names: tuple[str, ...]) -> Any:
        """The text-to-image pipeline with these ControlNets (diffusers'
        ControlNet pipeline over the same components: the UNet, its LoRAs
        and the VAE are shared, not copied), made once per combination."""
        pipe = self._control_pipes.get(names)
        if pipe is None:
            from diffusers import AutoPipelineForText2Image

            models = [self.controlnets[name] for name in names]
            pipe = AutoPipelineForText2Image.from_pipe(
                self.text2img, controlnet=models[0] if len(models) == 1 else models
            )
            pipe.set_progress_bar_config(disable=True)
            self._control_pipes[names] = pipe
        return pipe

    def load_lora(self, name: str, path: str) -> None:
        self.text2img.load_lora_weights(path, adapter_name=name)
        self._adapters = (*self._adapters, name)
        self.text2img.disable_lora()  # adapters are off until a batch asks

    def unload_lora(self, name: str) -> None:
        self.text2img.delete_adapters(name)
        self._adapters = tuple(a for a in self._adapters if a != name)

    def run(self, jobs: list[ImageJob]) -> list[list[np.ndarray] | None]:
        """Generate every job's images; None for a job cancelled meanwhile."""
        import torch

        first = jobs[0].request
        pipe = self.text2img
        if jobs[0].init_image is not None:
            assert self.img2img is not None, "init images are refused without one"
            pipe = self.img2img
        pipe.scheduler = self._scheduler(first.scheduler)
        self._set_adapters(first)
        rows = [(job, i) for job in jobs for i in range(job.request.num_images)]
        # CPU generators: the initial noise of seed s is the same on any
        # device, and row i's noise depends only on its own seed.
        generators = [torch.Generator().manual_seed(job.seed + i) for job, i in rows]
        negatives = [job.request.negative_prompt for job, _ in rows]
        # None when all are empty: the pipeline's own default (SDXL then uses
        # zero embeddings instead of encoding "" twice), as a plain call does.
        negatives_arg = negatives if any(negatives) else None
        kwargs: dict[str, Any] = {}
        if first.strength is not None:
            kwargs = {
                "image": [job.init_image for job, _ in rows],
                "strength": first.strength,
            }
        else:
            kwargs = {"width": first.width, "height": first.height}
        if first.controls:
            pipe = self.control_pipe(tuple(c.model for c in first.controls))
            kwargs.update(_control_kwargs(first, rows))
        if self.ip_adapter:
            pipe.set_ip_adapter_scale(first.ip_adapter_scale or 0.0)
            kwargs["ip_adapter_image"] = jobs[0].ip_image or self._blank_image()
        # Jobs whose rows are still in the batch, in row order: the callback
        # removes cancelled ones, unless `names` is None (masking instead).
        live = list(jobs)
        names = row_tensors(pipe)
        with torch.inference_mode():
            output = pipe(
                prompt=[job.request.prompt for job, _ in rows],
                negative_prompt=negatives_arg,
                num_inference_steps=first.steps,
                guidance_scale=first.guidance_scale,
                generator=generators,
                output_type="np",
                callback_on_step_end=self._step_callback(live, generators, names),
                callback_on_step_end_tensor_inputs=names or ["latents"],
                **kwargs,
            )
        pixels = (output.images * 255).round().clip(0, 255).astype(np.uint8)
        by_job: dict[ImageJob, list[np.ndarray]] = {}
        row = 0
        for job in live:  # the rows left are the live jobs', in order
            n = job.request.num_images
            by_job[job] = list(pixels[row : row + n])
            row += n
        assert not live or row == len(pixels), (row, len(pixels))
        return [None if job.cancelled else by_job.get(job) for job in jobs]

    def _scheduler(self, name: str) -> Any:
        # Fresh per batch: schedulers keep per-run state (step index, history).
        return build_scheduler(name, self._base_scheduler_config)

    def _set_adapters(self, request: ImageRequest) -> None:
        if not self._adapters:
            return
        if request.loras:
            self.text2img.enable_lora()
            self.text2img.set_adapters(
                [c.name for c in request.loras], [c.weight for c in request.loras]
            )
        else:
            self.text2img.disable_lora()

    def _step_callback(
        self, live: list[ImageJob], generators: list[Any], names: list[str] | None
    ) -> Callable[..., dict[str, Any]]:
        """Reports progress, then cuts cancelled jobs' rows out of `live`.

        Cancellations are looked at after reporting, so one that arrives
        while this step's progress goes out already spares the next step.
        """
        can_cut = names is not None

        def on_step_end(
            pipe: Any, i: int, t: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            nonlocal can_cut
            self._report(live, pipe.num_timesteps, i + 1, tensors["latents"])
            # One look per step: the event loop may cancel jobs meanwhile.
            cancelled = [job.cancelled for job in live]
            if not any(cancelled):
                return tensors
            if all(cancelled):
                # Decode one row, not the batch, where rows can be cut.
                if can_cut and drop_rows(pipe, tensors, [0], generators):
                    live.clear()
                pipe._interrupt = True  # diffusers' documented early stop
                return tensors
            if not can_cut:
                return tensors  # masking: the rows finish and are thrown away
            keep, row = [], 0
            for job, gone in zip(live, cancelled, strict=True):
                n = job.request.num_images
                if not gone:
                    keep.extend(range(row, row + n))
                row += n
            if drop_rows(pipe, tensors, keep, generators):
                kept = zip(live, cancelled, strict=True)
                live[:] = [job for job, gone in kept if not gone]
            else:
                logger.warning(
                    "%s: batch rows not as expected; masking cancelled rows",
                    type(pipe).__name__,
                )
                can_cut = False
            return tensors

        return on_step_end

    def _report(
        self, live: list[ImageJob], total: int, step: int, latents: Any
    ) -> None:
        """Progress (and previews when due) for each job still wanted."""
        row, rows_np = 0, None
        for job in live:
            n = job.request.num_images
            first, row = row, row + n
            if job.cancelled or not job.want_progress or job.on_step is None:
                continue
            every = job.request.preview_every
            previews: list[np.ndarray] = []
            if every and step % every == 0 and step < total:
                if rows_np is None:
                    rows_np = latents.float().cpu().numpy()
                previews = self._previews(rows_np[first:row])
            job.on_step(step, total, previews)

    def _previews(self, latents: np.ndarray) -> list[np.ndarray]:
        """Cheap low-res RGB (1/vae-scale of the image size) from latents."""
        return latent_previews(latents, self._rgb)
