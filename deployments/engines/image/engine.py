"""The image engine: diffusers pipelines behind a small async API.

Usable without Ray: `engine = ImageEngine(ImageEngineConfig(model=...))`,
`await engine.start()`, then `engine.stream(request)` / `engine.generate(request)`.
Concurrent compatible requests are batched (`batching.KeyedBatcher`); each
batch runs on one worker thread so the caller's event loop (a replica serving
gRPC) stays responsive while the pipeline computes.

Determinism: image i of a request starts from the noise of seed + i (CPU
generators), so the same request and seed give byte-identical PNGs whenever
they run with the same batch-mates, e.g. alone. CPU and GPU kernels are not
batch-invariant, so sharing a batch with other requests can move low-order
bits; `batching.max_batch_size: 1` makes outputs independent of load.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from deployments.engines.adapters import (
    AdapterUsers,
    check_removable,
    name_in_use,
    not_an_adapter,
)
from deployments.engines.base import Engine, resolve_device, resolve_dtype
from deployments.engines.batching import KeyedBatcher
from deployments.engines.image.config import (
    ImageEngineConfig,
)
from deployments.engines.image.controls import control_map
from deployments.engines.image.encoding import decode_image, encode_image
from deployments.engines.image.loading import (
    geometry,
    is_controlnet,
    load_controlnet,
    load_runner,
)
from deployments.engines.image.pipeline import (
    ImageJob,
    JobEvent,
    JobFailed,
    PipelineRunner,
    PixelsReady,
    StepDone,
)
from deployments.engines.image.schedulers import (
    build_scheduler,
    checkpoint_default,
    compatible_schedulers,
)
from deployments.engines.image.styles import apply_style, styles_of
from deployments.engines.image.types import (
    DEFAULT_IP_ADAPTER_SCALE,
    FORMATS,
    GUIDANCE_RANGE,
    IP_ADAPTER_SCALE_RANGE,
    EncodedImage,
    ImageLimits,
    ImageProgress,
    ImageRequest,
    ImageResult,
    resolve,
)
from deployments.engines.image.video.encoding import encode_video
from deployments.engines.image.video.interpolation import interpolate
from deployments.engines.image.video.runner import VideoJob
from deployments.engines.image.video.types import (
    INTERPOLATIONS,
    VIDEO_FORMATS,
    EncodedVideo,
    VideoLimits,
    VideoRequest,
    VideoResult,
    resolve_video,
)
from deployments.engines.memory import module_bytes
from deployments.errors import Cancelled, InvalidArgument, NotFound, Unavailable

__all__ = [
    "ImageEngine",
]

logger = logging.getLogger(__name__)

ImageEvent = ImageProgress | ImageResult
VideoEvent = ImageProgress | VideoResult


class ImageEngine(Engine):
    """Owns the pipelines, the batcher and the worker thread."""

    family = "image"
    config: ImageEngineConfig

    def __init__(self, config: ImageEngineConfig) -> None:
        super().__init__(config)
        self.limits: ImageLimits | None = None
        self.video_limits: VideoLimits | None = None  # None: no video here
        self._engine_name = "diffusers"
        self.cancelled_requests = 0
        self._runner: PipelineRunner | None = None
        # One worker: batches run one after another on the same pipeline.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="image-pipeline")
        self._adapter_users = AdapterUsers()
        self.styles = styles_of(config.styles)
        self.batcher: KeyedBatcher[ImageJob] = KeyedBatcher(
            self._run_batch,
            key=lambda job: job.key,
            size=lambda job: job.request.num_images,
            config=config.batching,
        )

    @property
    def ready(self) -> bool:
        return self._runner is not None

    @property
    def engine_name(self) -> str:
        return self._engine_name

    async def _load(self) -> None:
        """Load the pipelines and adapters on the worker thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._worker, self._start_blocking)

    def _start_blocking(self) -> None:
        try:
            import diffusers
            import torch
        except ImportError as exc:  # pragma: no cover - install problem
            raise RuntimeError(
                "diffusers is not installed: pip install 'maestro[serve]'"
            ) from exc
        c = self.config
        if c.torch_threads:
            torch.set_num_threads(c.torch_threads)
        device = resolve_device(c.device)
        runner = load_runner(c, device, getattr(torch, resolve_dtype(c.dtype, device)))
        limits = self._limits(
            runner.text2img, image_to_image=runner.img2img is not None
        )
        if device == "cuda":
            device = f"cuda:{torch.cuda.current_device()}"
        self.device = device
        self._engine_name = f"diffusers {diffusers.__version__}"
        self.limits = limits
        if runner.video is not None:
            runner.video.use_text_scheduler(
                build_scheduler(
                    limits.default_scheduler, runner.text2img.scheduler.config
                )
            )
            self.video_limits = runner.video.limits()
        self._runner = runner

    def _limits(self, pipe: Any, *, image_to_image: bool) -> ImageLimits:
        lim = self.config.limits
        native, multiple = geometry(pipe)
        schedulers = compatible_schedulers(pipe.scheduler)
        if not schedulers:
            raise RuntimeError(
                f"{self.config.model}: its scheduler "
                f"{type(pipe.scheduler).__name__} is compatible with none "
                "Maestro offers"
            )
        default = self.config.default_scheduler or checkpoint_default(
            pipe.scheduler, schedulers
        )
        if default not in schedulers:
            raise RuntimeError(
                f"default_scheduler {default!r} does not suit {self.config.model} "
                f"({type(pipe.scheduler).__name__}); allowed: {', '.join(schedulers)}"
            )
        return ImageLimits(
            default_width=lim.default_width or native,
            default_height=lim.default_height or native,
            min_size=lim.min_size,
            max_size=lim.max_size,
            max_steps=lim.max_steps,
            default_steps=lim.default_steps,
            max_images=lim.max_images,
            max_total_pixels=lim.max_total_pixels,
            default_guidance_scale=lim.default_guidance_scale,
            schedulers=schedulers,
            default_scheduler=default,
            loras=tuple(lora.name for lora in self.config.loras),
            size_multiple=multiple,
            image_to_image=image_to_image,
            controlnets=tuple((c.name, c.type) for c in self.config.controlnets),
            ip_adapter=self.config.ip_adapter is not None,
        )

    async def _unload(self) -> None:
        await self.batcher.close()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._runner = None

    async def generate(self, request: ImageRequest) -> ImageResult:
        """The finished images (no progress events are produced)."""
        async with aclosing(self._events(request, want_progress=False)) as events:
            async for event in events:
                if isinstance(event, ImageResult):
                    return event
        raise Cancelled("image request ended without a result")  # pragma: no cover

    def stream(self, request: ImageRequest) -> AsyncIterator[ImageEvent]:
        """A progress event per denoising step, then the result.

        Closing or cancelling the iterator cancels the request: it leaves the
        queue, or, if its batch runs already, stops being reported at the
        next step (see `pipeline` for what happens to its rows).
        """
        return self._events(request, want_progress=True)

    async def _events(
        self, request: ImageRequest, *, want_progress: bool
    ) -> AsyncIterator[ImageEvent]:
        if self._runner is None or self.limits is None:
            raise Unavailable(f"image engine not ready: {self.status_message}")
        job = await self._prepare(request, want_progress)
        self._wire(job)
        held = self._adapter_users.take(
            [lora.name for lora in job.request.loras]
            + [control.model for control in job.request.controls]
        )
        self.batcher.submit(job)
        try:
            relay = self._relay(
                job, lambda px: asyncio.to_thread(self._encode, job, px)
            )
            async with aclosing(relay):
                async for event in relay:
                    yield event
        finally:
            self._adapter_users.release(held)
            if not job.answered:
                job.cancel()
                self.cancelled_requests += 1
                self.batcher.discard(job)

    def _wire(self, job: ImageJob | VideoJob) -> None:
        """Give `job` its event queue and an `on_step` (worker thread) into it."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[JobEvent] = asyncio.Queue()

        def on_step(step: int, total: int, previews: list[Any]) -> None:
            loop.call_soon_threadsafe(
                events.put_nowait, StepDone(step, total, previews)
            )

        job.on_step, job.events = on_step, events

    async def _relay(
        self,
        job: ImageJob | VideoJob,
        finish: Callable[[Any], Awaitable[ImageResult | VideoResult]],
    ) -> AsyncIterator[ImageEvent | VideoEvent]:
        """The job's progress events, then `finish(pixels)`; or its error.
        `job.answered` is set before either."""
        assert job.events is not None
        while True:
            match await job.events.get():
                case JobFailed(error=error):
                    job.answered = True
                    raise error
                case PixelsReady(pixels=pixels):
                    job.answered = True
                    yield await finish(pixels)
                    return
                case StepDone(step=step, total=total, previews=previews):
                    yield ImageProgress(
                        step=step,
                        total_steps=total,
                        elapsed_seconds=time.monotonic() - job.submitted,
                        previews=tuple(self._encode_previews(job, previews)),
                    )

    async def generate_video(self, request: VideoRequest) -> VideoResult:
        """The finished clip (no progress events are produced)."""
        async with aclosing(self._video_events(request, want_progress=False)) as events:
            async for event in events:
                if isinstance(event, VideoResult):
                    return event
        raise Cancelled("video request ended without a result")  # pragma: no cover

    def stream_video(self, request: VideoRequest) -> AsyncIterator[VideoEvent]:
        """A progress event per denoising step (previews of a few frames
        when asked), then the clip. Closing the iterator cancels the request:
        it leaves the queue, or stops at the next step if it runs already."""
        return self._video_events(request, want_progress=True)

    async def _video_events(
        self, request: VideoRequest, *, want_progress: bool
    ) -> AsyncIterator[VideoEvent]:
        if self._runner is None or self.limits is None:
            raise Unavailable(f"image engine not ready: {self.status_message}")
        video = self._runner.video
        if video is None or self.video_limits is None:
            raise InvalidArgument(
                field="model",
                value=self.served_id,
                allowed="a model with video configured (ListModels limits `video`)",
            )
        job = await self._prepare_video(request, want_progress)
        self._wire(job)
        events = job.events
        assert events is not None
        loop = asyncio.get_running_loop()

        def run() -> None:  # on the worker, after the batches queued before it
            try:
                frames = video.run(job)
            except Exception as exc:
                logger.exception("video request failed")
                loop.call_soon_threadsafe(events.put_nowait, JobFailed(exc))
                return
            if frames is not None:
                loop.call_soon_threadsafe(events.put_nowait, PixelsReady(frames))

        started = time.monotonic()
        running = loop.run_in_executor(self._worker, run)

        async def finish(frames: Any) -> VideoResult:
            denoised = time.monotonic() - started
            return await asyncio.to_thread(self._encode_video, job, frames, denoised)

        try:
            async with aclosing(self._relay(job, finish)) as relay:
                async for event in relay:
                    yield event
        finally:
            if not job.answered:
                job.cancel()
                running.cancel()  # still queued: never starts
                self.cancelled_requests += 1

    async def _prepare_video(
        self, request: VideoRequest, want_progress: bool
    ) -> VideoJob:
        limits = self.video_limits
        assert limits is not None
        init = None
        if request.init_image and limits.image_to_video:  # else refused
            init = await asyncio.to_thread(
                decode_image,
                request.init_image,
                field="init_image",
                max_pixels=limits.max_size * limits.max_size,
            )
        resolved = resolve_video(
            request, limits, init_size=None if init is None else init.size
        )
        size = (resolved.width, resolved.height)
        if init is not None and init.size != size:
            init = init.resize(size)
        seed = resolved.seed
        if seed is None:
            seed = secrets.randbelow(2**31)
        return VideoJob(
            request=resolved, seed=seed, init_image=init, want_progress=want_progress
        )

    def _encode_video(
        self, job: VideoJob, frames: Any, denoise_seconds: float
    ) -> VideoResult:
        r = job.request
        start = time.monotonic()
        frames = interpolate(frames, r.interpolation_factor, r.interpolation)
        data, mime = encode_video(
            frames, r.format, r.fps * r.interpolation_factor, r.quality
        )
        return VideoResult(
            video=EncodedVideo(
                data=data,
                mime_type=mime,
                width=r.width,
                height=r.height,
                num_frames=len(frames),
                fps=r.fps * r.interpolation_factor,
                seed=job.seed,
            ),
            denoise_seconds=denoise_seconds,
            encode_seconds=time.monotonic() - start,
        )

    def memory_bytes(self) -> int | None:
        if self._runner is None:
            return None
        pipe = self._runner.text2img  # img2img shares its components
        video = self._runner.video
        return module_bytes(
            [c for c in pipe.components.values() if hasattr(c, "parameters")]
            + ([] if video is None else video.modules())
        )

    @property
    def adapters(self) -> tuple[str, ...]:
        """LoRAs and ControlNets, by name (LoadAdapter / UnloadAdapter)."""
        if self.limits is None:
            return ()
        return (*self.limits.loras, *(name for name, _ in self.limits.controlnets))

    async def load_adapter(self, name: str, path: str, control_type: str = "") -> None:
        """Load a LoRA, or with `control_type` a ControlNet, on the pipeline
        worker (between batches, never during)."""
        if self._runner is None or self.limits is None:
            raise Unavailable(f"image engine not ready: {self.status_message}")
        if name in self.adapters:
            raise name_in_use(name)
        loop = asyncio.get_running_loop()
        if control_type:
            await loop.run_in_executor(self._worker, self._load_controlnet, name, path)
            controlnets = (*self.limits.controlnets, (name, control_type))
            self.limits = replace(self.limits, controlnets=controlnets)
            return
        if is_controlnet(path):
            raise InvalidArgument(
                field="control_type",
                allowed="the control type (canny, depth, pose, ...): "
                f"{path} is a ControlNet, not a LoRA",
            )
        try:
            await loop.run_in_executor(self._worker, self._runner.load_lora, name, path)
        except (ValueError, OSError, KeyError) as exc:  # not a LoRA of this model
            raise not_an_adapter(path, exc) from None
        self.limits = replace(self.limits, loras=(*self.limits.loras, name))

    def _load_controlnet(self, name: str, path: str) -> None:
        assert self._runner is not None
        what = "a ControlNet of this model"
        if not is_controlnet(path):
            no_config = ValueError("no config.json of a ControlNetModel in it")
            raise not_an_adapter(path, no_config, what)
        try:
            load_controlnet(self._runner, name, path)
        except (ValueError, OSError, KeyError, RuntimeError) as exc:
            self._runner.remove_controlnet(name)
            raise not_an_adapter(path, exc, what) from None

    async def unload_adapter(self, name: str) -> None:
        """Remove a run-time LoRA or ControlNet once the requests using it
        (queued too) finished."""
        check_removable(name, [*self.config.loras, *self.config.controlnets])
        if self._runner is None or self.limits is None:
            raise Unavailable(f"image engine not ready: {self.status_message}")
        if name not in self.adapters:
            raise NotFound(what="adapter", name=name, available=list(self.adapters))
        self.limits = replace(  # new requests: NOT_FOUND
            self.limits,
            loras=tuple(n for n in self.limits.loras if n != name),
            controlnets=tuple(c for c in self.limits.controlnets if c[0] != name),
        )
        await self._adapter_users.drained(name)
        loop = asyncio.get_running_loop()
        if name in self._runner.controlnets:
            await loop.run_in_executor(
                self._worker, self._runner.remove_controlnet, name
            )
        else:
            await loop.run_in_executor(self._worker, self._runner.unload_lora, name)

    async def _prepare(self, request: ImageRequest, want_progress: bool) -> ImageJob:
        assert self.limits is not None
        init = None
        if request.init_image and self.limits.image_to_image:  # else refused
            max_pixels = self.limits.max_size * self.limits.max_size
            init = await asyncio.to_thread(
                decode_image,
                request.init_image,
                field="init_image",
                max_pixels=max_pixels,
            )
        resolved = resolve(
            apply_style(request, self.styles),
            self.limits,
            init_size=None if init is None else init.size,
        )
        size = (resolved.width, resolved.height)
        if init is not None and init.size != size:
            init = init.resize(size)
        controls = tuple(
            [
                await asyncio.to_thread(
                    control_map,
                    control,
                    size,
                    index=i,
                    max_pixels=self.limits.max_size * self.limits.max_size,
                )
                for i, control in enumerate(resolved.controls)
            ]
        )
        seed = resolved.seed
        if seed is None:
            seed = secrets.randbelow(2**31)
        return ImageJob(
            request=resolved,
            seed=seed,
            init_image=init,
            control_images=controls,
            ip_image=None
            if not resolved.ip_adapter_image
            else await asyncio.to_thread(
                decode_image,
                resolved.ip_adapter_image,
                field="ip_adapter_image",
                max_pixels=self.limits.max_size * self.limits.max_size,
            ),
            want_progress=want_progress,
        )

    async def _run_batch(self, jobs: list[ImageJob]) -> None:
        """Batcher callback: run `jobs` on the worker, hand each its pixels."""
        assert self._runner is not None
        live = [job for job in jobs if not job.cancelled]
        if not live:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._worker, self._runner.run, live)
        except Exception as exc:
            logger.exception("image batch of %d requests failed", len(live))
            for job in live:
                assert job.events is not None
                job.events.put_nowait(JobFailed(exc))
            return
        for job, pixels in zip(live, results, strict=True):
            if pixels is not None:
                assert job.events is not None
                job.events.put_nowait(PixelsReady(pixels))

    def _encode(self, job: ImageJob, pixels: list[Any]) -> ImageResult:
        r = job.request
        images = []
        for i, array in enumerate(pixels):
            data, mime = encode_image(array, r.format, r.quality)
            images.append(EncodedImage(data, mime, r.width, r.height, job.seed + i))
        return ImageResult(images=tuple(images))

    def _encode_previews(
        self, job: ImageJob | VideoJob, previews: list[Any]
    ) -> list[Any]:
        out = []
        for i, array in enumerate(previews):
            data, mime = encode_image(array, "png", 0)
            height, width = array.shape[:2]
            out.append(EncodedImage(data, mime, width, height, job.seed + i))
        return out

    def limits_info(self) -> dict[str, str]:
        """Request limits as ListModels reports them (empty until started)."""
        lim, batching = self.limits, self.config.batching
        if lim is None:
            return {}
        size = f"multiple of {lim.size_multiple} in {lim.min_size}..{lim.max_size}"
        return {
            "width": size,
            "height": size,
            "default_size": f"{lim.default_width}x{lim.default_height}",
            "max_steps": str(lim.max_steps),
            "default_steps": str(lim.default_steps),
            "max_images": str(lim.max_images),
            "max_total_pixels": str(lim.max_total_pixels),
            "guidance_scale": f"{GUIDANCE_RANGE[0]}..{GUIDANCE_RANGE[1]}",
            "default_guidance_scale": str(lim.default_guidance_scale),
            "schedulers": ", ".join(lim.schedulers),
            "default_scheduler": lim.default_scheduler,
            "formats": ", ".join(FORMATS),
            "quality": "1..100",
            "strength": "(0, 1], image-to-image only"
            if lim.image_to_image
            else "none: text-to-image only",
            "loras": ", ".join(lim.loras),
            "styles": ", ".join(style.name for style in self.styles),
            "controlnets": ", ".join(f"{n} ({t})" for n, t in lim.controlnets),
            "ip_adapter": _ip_adapter_info(lim.ip_adapter),
            "max_batch_size": str(batching.max_batch_size),
            "max_wait_ms": f"{batching.max_wait_ms:g}",
            **_video_info(self.video_limits),
        }

    def cache_form(self, request: ImageRequest | VideoRequest) -> dict[str, Any] | None:
        """Seeded requests, images or videos, defaults filled in (previews
        change only the progress events, not the result). With an init image
        the size follows the image, so its fields are keyed as sent."""
        if request.seed is None:
            return None
        if isinstance(request, VideoRequest):
            if self.video_limits is None:
                return None
            if not request.init_image:
                request = resolve_video(request, self.video_limits)
            return self._identified(replace(request, request_id="", preview_every=0))
        if self.limits is None:
            return None
        if not request.init_image:
            request = resolve(apply_style(request, self.styles), self.limits)
        form = replace(request, request_id="", preview_every=0)
        return self._identified(form, tuple(lora.name for lora in request.loras))

    def stats(self) -> dict[str, str]:
        """Live counters for ListModels."""
        s = self.batcher.stats
        return {
            "queued_requests": str(self.batcher.queued),
            "running_requests": str(self.batcher.running),
            "batches_run": str(s.batches),
            "images_run": str(s.items),
            "batch_sizes": s.summary(),
            "cancelled_requests": str(self.cancelled_requests),
        }


def _video_info(lim: VideoLimits | None) -> dict[str, str]:
    """The video limits ListModels reports (`video: none` without video)."""
    if lim is None:
        return {"video": "none"}
    modes = [
        name
        for name, on in (
            ("text-to-video (AnimateDiff)", lim.text_to_video),
            ("image-to-video (Stable Video Diffusion, init_image)", lim.image_to_video),
        )
        if on
    ]
    size = f"multiple of 8 in {lim.min_size}..{lim.max_size}"
    return {
        "video": ", ".join(modes),
        "video_size": f"{size}, default {lim.default_width}x{lim.default_height}",
        "video_frames": f"2..{lim.max_frames} (default {lim.default_frames}; "
        f"image-to-video {lim.image_to_video_frames})",
        "video_fps": f"1..{lim.max_fps} (default {lim.default_fps})",
        "video_steps": f"1..{lim.max_steps} (default {lim.default_steps})",
        "video_formats": ", ".join(VIDEO_FORMATS),
        "video_interpolation": f"factor 1..{lim.max_interpolation}: "
        + ", ".join(INTERPOLATIONS),
        "video_max_total_pixels": str(lim.max_total_pixels),
    }


def _ip_adapter_info(loaded: bool) -> str:
    if not loaded:
        return "none"
    low, high = IP_ADAPTER_SCALE_RANGE
    return f"scale {low}..{high} (default {DEFAULT_IP_ADAPTER_SCALE})"
