"""The image family's engine span and metrics, observed from the deployment.

The engine stays unaware of them: `watch_batches` listens to the batcher
(batch size, images, denoising steps and steps per second, per pipeline
call), and `request_span` wraps a request in an
`image.engine.<op>` span carrying steps, size, image count and the size of
the batch the request ran in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deployments.engines.image.types import ImageRequest, ImageResult
from deployments.engines.image.video.types import VideoRequest, VideoResult
from deployments.spans import ending
from observability import metrics, tracing

__all__ = ["BatchSizes", "request_span", "video_span", "watch_batches"]

_REMEMBERED = 1024  # batch sizes kept for requests not yet finished


class BatchSizes:
    """Images in the batch each recent request ran in, by request id."""

    def __init__(self) -> None:
        self._sizes: OrderedDict[str, int] = OrderedDict()

    def note(self, request_id: str, images: int) -> None:
        self._sizes[request_id] = images
        while len(self._sizes) > _REMEMBERED:
            self._sizes.popitem(last=False)

    def pop(self, request_id: str) -> int | None:
        return self._sizes.pop(request_id, None)


def watch_batches(engine: Any, sizes: BatchSizes | None = None) -> BatchSizes:
    """Record every pipeline call of `engine`'s batcher into `sizes` (a new
    one unless given: several engines of a registry share one)."""
    sizes = BatchSizes() if sizes is None else sizes

    def record(jobs: list[Any], seconds: float) -> None:
        live = [job for job in jobs if not getattr(job, "cancelled", False)]
        if not live:
            return
        images = sum(job.request.num_images for job in live)
        steps = live[0].request.steps
        metrics.observe("maestro_image_batch_size", images)
        metrics.inc("maestro_image_images", images)
        metrics.inc("maestro_image_denoising_steps", steps)
        if seconds > 0:
            metrics.set_gauge("maestro_image_steps_per_second", steps / seconds)
        for job in live:
            sizes.note(job.request.request_id, images)

    engine.batcher.listeners.append(record)
    return sizes


@contextmanager
def request_span(
    op: str, request: ImageRequest, *, default_steps: int, batch_sizes: BatchSizes
) -> Iterator[Callable[[ImageResult], None]]:
    """The request's `image.engine.<op>` span; call the yielded with the result."""
    span = tracing.start_span(
        f"image.engine.{op}",
        {
            "maestro.image.steps": request.steps or default_steps,
            "maestro.image.num_images": request.num_images or 1,
        },
    )

    def on_result(result: ImageResult) -> None:
        if result.images and span.is_recording():
            first = result.images[0]
            span.set_attribute("maestro.image.size", f"{first.width}x{first.height}")

    with ending(span):
        try:
            yield on_result
        finally:
            batch = batch_sizes.pop(request.request_id)
            if batch is not None and span.is_recording():
                span.set_attribute("maestro.image.batch_size", batch)


@contextmanager
def video_span(
    op: str, request: VideoRequest
) -> Iterator[Callable[[VideoResult], None]]:
    """The request's `image.engine.video.<op>` span, with denoising and
    encoding time apart; call the yielded with the result."""
    span = tracing.start_span(
        f"image.engine.video.{op}",
        {"maestro.video.image_to_video": bool(request.init_image)},
    )

    def on_result(result: VideoResult) -> None:
        if span.is_recording():
            video = result.video
            span.set_attributes(
                {
                    "maestro.video.size": f"{video.width}x{video.height}",
                    "maestro.video.frames": video.num_frames,
                    "maestro.video.fps": video.fps,
                    "maestro.video.mime_type": video.mime_type,
                    "maestro.video.denoise_seconds": result.denoise_seconds,
                    "maestro.video.encode_seconds": result.encode_seconds,
                }
            )

    with ending(span):
        yield on_result
