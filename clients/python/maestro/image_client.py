"""Image and video methods of the typed clients (`generate_image`,
`stream_image`, `generate_video`, `stream_video`).

Mixed into `MaestroClient` / `AsyncMaestroClient`, which provide `channel`
and `_deadline`. Requests are built from keyword arguments named after the
proto fields; conveniences: `loras` takes `{"name": weight}` or
`[("name", weight)]`, `format` takes "png", "jpeg" or "webp" (images) and
"mp4", "webp" or "gif" (videos).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

import grpc

from maestro.errors import rpc_error as _error
from maestro.retry import acall_with_retry, call_with_retry, seeded_policy
from maestro.streams import aserver_stream, server_stream
from maestro.v1 import image_pb2, image_pb2_grpc

__all__ = [
    "AsyncImageMethods",
    "ImageMethods",
    "LoraSpec",
    "image_request",
    "video_request",
]

Msg = TypeVar("Msg")
LoraSpec = Mapping[str, float] | Iterable[tuple[str, float]]
_FORMATS = {
    "png": image_pb2.IMAGE_FORMAT_PNG,
    "jpeg": image_pb2.IMAGE_FORMAT_JPEG,
    "jpg": image_pb2.IMAGE_FORMAT_JPEG,
    "webp": image_pb2.IMAGE_FORMAT_WEBP,
}

_VIDEO_FORMATS = {
    "mp4": image_pb2.VIDEO_FORMAT_MP4,
    "webp": image_pb2.VIDEO_FORMAT_WEBP,
    "gif": image_pb2.VIDEO_FORMAT_GIF,
}


def video_request(cls: type[Msg], prompt: str = "", **params: Any) -> Msg:
    """A GenerateVideoRequest/StreamVideoRequest; None params are left unset."""
    fields = {k: v for k, v in params.items() if v is not None}
    if isinstance(fields.get("format"), str):
        fields["format"] = _VIDEO_FORMATS[fields["format"].lower()]
    return cls(prompt=prompt, **fields)


def image_request(
    cls: type[Msg], prompt: str, *, loras: LoraSpec | None = None, **params: Any
) -> Msg:
    """A GenerateImageRequest/StreamImageRequest; None params are left unset."""
    fields = {k: v for k, v in params.items() if v is not None}
    if isinstance(fields.get("format"), str):
        fields["format"] = _FORMATS[fields["format"].lower()]
    pairs = loras.items() if isinstance(loras, Mapping) else (loras or ())
    adapters = [image_pb2.LoraWeight(name=n, weight=w) for n, w in pairs]
    return cls(prompt=prompt, loras=adapters, **fields)


class ImageMethods:
    """Blocking ImageService calls."""

    channel: grpc.Channel
    _image_stub: image_pb2_grpc.ImageServiceStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _image(self) -> image_pb2_grpc.ImageServiceStub:
        if self._image_stub is None:
            self._image_stub = image_pb2_grpc.ImageServiceStub(self.channel)
        return self._image_stub

    def generate_image(
        self,
        prompt: str,
        *,
        loras: LoraSpec | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> image_pb2.GenerateImageResponse:
        """Finished images. `params`: any GenerateImageRequest field."""
        request = image_request(
            image_pb2.GenerateImageRequest, prompt, loras=loras, **params
        )
        try:
            return call_with_retry(
                lambda t: self._image().GenerateImage(
                    request,
                    timeout=t,
                    metadata=self._metadata("image", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise _error(error) from None

    def stream_image(
        self,
        prompt: str,
        *,
        loras: LoraSpec | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Iterator[image_pb2.StreamImageResponse]:
        """Progress events, then the result; closing the iterator cancels."""
        request = image_request(
            image_pb2.StreamImageRequest, prompt, loras=loras, **params
        )
        call = self._image().StreamImage(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("image", self._deadline(timeout), request.model),
        )
        yield from server_stream(call)

    def generate_video(
        self, prompt: str = "", *, timeout: float | None = None, **params: Any
    ) -> image_pb2.GenerateVideoResponse:
        """The finished clip. `params`: any GenerateVideoRequest field (an
        `init_image` makes it image-to-video, with no prompt)."""
        request = video_request(image_pb2.GenerateVideoRequest, prompt, **params)
        try:
            return call_with_retry(
                lambda t: self._image().GenerateVideo(
                    request,
                    timeout=t,
                    metadata=self._metadata("image", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise _error(error) from None

    def stream_video(
        self, prompt: str = "", *, timeout: float | None = None, **params: Any
    ) -> Iterator[image_pb2.StreamVideoResponse]:
        """Progress events, then the clip; closing the iterator cancels."""
        request = video_request(image_pb2.StreamVideoRequest, prompt, **params)
        call = self._image().StreamVideo(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("image", self._deadline(timeout), request.model),
        )
        yield from server_stream(call)


class AsyncImageMethods:
    """asyncio ImageService calls."""

    channel: grpc.aio.Channel
    _image_stub: image_pb2_grpc.ImageServiceStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _image(self) -> image_pb2_grpc.ImageServiceStub:
        if self._image_stub is None:
            self._image_stub = image_pb2_grpc.ImageServiceStub(self.channel)
        return self._image_stub

    async def generate_image(
        self,
        prompt: str,
        *,
        loras: LoraSpec | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> image_pb2.GenerateImageResponse:
        request = image_request(
            image_pb2.GenerateImageRequest, prompt, loras=loras, **params
        )
        try:
            return await acall_with_retry(
                lambda t: self._image().GenerateImage(
                    request,
                    timeout=t,
                    metadata=self._metadata("image", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise _error(error) from None

    async def stream_image(
        self,
        prompt: str,
        *,
        loras: LoraSpec | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> AsyncIterator[image_pb2.StreamImageResponse]:
        request = image_request(
            image_pb2.StreamImageRequest, prompt, loras=loras, **params
        )
        call = self._image().StreamImage(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("image", self._deadline(timeout), request.model),
        )
        # aclosing: an early close of this stream cancels the call at once.
        async with aclosing(aserver_stream(call)) as messages:
            async for message in messages:
                yield message

    async def generate_video(
        self, prompt: str = "", *, timeout: float | None = None, **params: Any
    ) -> image_pb2.GenerateVideoResponse:
        request = video_request(image_pb2.GenerateVideoRequest, prompt, **params)
        try:
            return await acall_with_retry(
                lambda t: self._image().GenerateVideo(
                    request,
                    timeout=t,
                    metadata=self._metadata("image", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise _error(error) from None

    async def stream_video(
        self, prompt: str = "", *, timeout: float | None = None, **params: Any
    ) -> AsyncIterator[image_pb2.StreamVideoResponse]:
        request = video_request(image_pb2.StreamVideoRequest, prompt, **params)
        call = self._image().StreamVideo(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("image", self._deadline(timeout), request.model),
        )
        async with aclosing(aserver_stream(call)) as messages:
            async for message in messages:
                yield message
