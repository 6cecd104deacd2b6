"""Proto <-> engine conversions for the image family; engines never see protos."""

from __future__ import annotations

from deployments.engines.image.controls import ControlChoice
from deployments.engines.image.types import (
    EncodedImage,
    ImageProgress,
    ImageRequest,
    ImageResult,
    LoraChoice,
)
from deployments.engines.image.video.types import (
    EncodedVideo,
    VideoRequest,
    VideoResult,
)
from maestro.v1 import image_pb2

__all__ = [
    "to_engine_request",
    "to_generate_response",
    "to_progress_response",
    "to_result_response",
    "to_video_request",
    "to_video_response",
    "to_video_result_response",
]

_FORMATS = {
    image_pb2.IMAGE_FORMAT_UNSPECIFIED: "",
    image_pb2.IMAGE_FORMAT_PNG: "png",
    image_pb2.IMAGE_FORMAT_JPEG: "jpeg",
    image_pb2.IMAGE_FORMAT_WEBP: "webp",
}
_VIDEO_FORMATS = {
    image_pb2.VIDEO_FORMAT_UNSPECIFIED: "",
    image_pb2.VIDEO_FORMAT_MP4: "mp4",
    image_pb2.VIDEO_FORMAT_WEBP: "webp",
    image_pb2.VIDEO_FORMAT_GIF: "gif",
}
ImageRequestMessage = image_pb2.GenerateImageRequest | image_pb2.StreamImageRequest
VideoRequestMessage = image_pb2.GenerateVideoRequest | image_pb2.StreamVideoRequest


def _opt(msg: ImageRequestMessage | VideoRequestMessage, name: str):  # type: ignore[no-untyped-def]
    return getattr(msg, name) if msg.HasField(name) else None


def to_engine_request(msg: ImageRequestMessage, request_id: str) -> ImageRequest:
    """Both request messages share field names and numbers, so one converter.

    An enum number this server does not know (a newer client) is passed on as
    its number, and validation rejects it naming `format`.
    """
    return ImageRequest(
        prompt=msg.prompt,
        negative_prompt=msg.negative_prompt,
        width=msg.width,
        height=msg.height,
        steps=msg.steps,
        guidance_scale=_opt(msg, "guidance_scale"),
        seed=_opt(msg, "seed"),
        num_images=msg.num_images,
        scheduler=msg.scheduler,
        format=_FORMATS.get(msg.format, str(msg.format)),
        quality=msg.quality,
        init_image=msg.init_image,
        strength=_opt(msg, "strength"),
        loras=tuple(LoraChoice(lora.name, lora.weight) for lora in msg.loras),
        preview_every=getattr(msg, "preview_every", 0),
        request_id=request_id,
        style=msg.style,
        controls=tuple(_control(c) for c in msg.controls),
        ip_adapter_image=msg.ip_adapter_image,
        ip_adapter_scale=_opt(msg, "ip_adapter_scale"),
    )


def _control(msg: image_pb2.ControlImage) -> ControlChoice:
    def opt(name: str) -> float | None:
        return getattr(msg, name) if msg.HasField(name) else None

    return ControlChoice(
        type=msg.type,
        image=msg.image,
        preprocess=msg.preprocess,
        scale=opt("scale"),
        start=opt("guidance_start"),
        end=opt("guidance_end"),
        model=msg.model,
    )


def _image(image: EncodedImage) -> image_pb2.Image:
    return image_pb2.Image(
        data=image.data,
        mime_type=image.mime_type,
        width=image.width,
        height=image.height,
        seed=image.seed,
    )


def to_generate_response(
    result: ImageResult, *, model: str, request_id: str
) -> image_pb2.GenerateImageResponse:
    return image_pb2.GenerateImageResponse(
        images=[_image(i) for i in result.images], model=model, request_id=request_id
    )


def to_result_response(
    result: ImageResult, *, model: str, request_id: str
) -> image_pb2.StreamImageResponse:
    return image_pb2.StreamImageResponse(
        result=to_generate_response(result, model=model, request_id=request_id)
    )


def to_progress_response(progress: ImageProgress) -> image_pb2.StreamImageResponse:
    return image_pb2.StreamImageResponse(
        progress=image_pb2.ImageProgress(
            step=progress.step,
            total_steps=progress.total_steps,
            elapsed_seconds=progress.elapsed_seconds,
            previews=[_image(p) for p in progress.previews],
        )
    )


def to_video_request(msg: VideoRequestMessage, request_id: str) -> VideoRequest:
    """Both video request messages share field names and numbers."""
    return VideoRequest(
        prompt=msg.prompt,
        negative_prompt=msg.negative_prompt,
        width=msg.width,
        height=msg.height,
        steps=msg.steps,
        guidance_scale=_opt(msg, "guidance_scale"),
        seed=_opt(msg, "seed"),
        num_frames=msg.num_frames,
        fps=msg.fps,
        format=_VIDEO_FORMATS.get(msg.format, str(msg.format)),
        quality=msg.quality,
        init_image=msg.init_image,
        motion_bucket_id=_opt(msg, "motion_bucket_id"),
        noise_aug_strength=_opt(msg, "noise_aug_strength"),
        interpolation_factor=msg.interpolation_factor,
        interpolation=msg.interpolation,
        preview_every=getattr(msg, "preview_every", 0),
        request_id=request_id,
    )


def _video(video: EncodedVideo) -> image_pb2.Video:
    return image_pb2.Video(
        data=video.data,
        mime_type=video.mime_type,
        width=video.width,
        height=video.height,
        num_frames=video.num_frames,
        fps=video.fps,
        seed=video.seed,
    )


def to_video_response(
    result: VideoResult, *, model: str, request_id: str
) -> image_pb2.GenerateVideoResponse:
    return image_pb2.GenerateVideoResponse(
        video=_video(result.video), model=model, request_id=request_id
    )


def to_video_result_response(
    result: VideoResult, *, model: str, request_id: str
) -> image_pb2.StreamVideoResponse:
    return image_pb2.StreamVideoResponse(
        result=to_video_response(result, model=model, request_id=request_id)
    )
