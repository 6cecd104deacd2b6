"""Studio methods of the typed clients (`compose`).

Mixed into `MaestroClient` / `AsyncMaestroClient`, which provide `channel`
and `_deadline`. `compose` yields `ComposeResponse` events as the server sends
them: the plan, then each scene's image, audio or error in completion order,
then `done`. Leaving the iterator early (or the deadline passing) cancels the
call, and the server cancels every text, image and voice call it started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from typing import Any

import grpc

from maestro.streams import aserver_stream, server_stream
from maestro.v1 import image_pb2, studio_pb2, studio_pb2_grpc, voice_pb2

__all__ = ["AsyncStudioMethods", "StudioMethods", "compose_request"]

_IMAGE_FORMATS = {
    "png": image_pb2.IMAGE_FORMAT_PNG,
    "jpeg": image_pb2.IMAGE_FORMAT_JPEG,
    "jpg": image_pb2.IMAGE_FORMAT_JPEG,
    "webp": image_pb2.IMAGE_FORMAT_WEBP,
}
_AUDIO_FORMATS = {
    "wav": voice_pb2.AUDIO_FORMAT_WAV,
    "flac": voice_pb2.AUDIO_FORMAT_FLAC,
    "pcm": voice_pb2.AUDIO_FORMAT_PCM_S16LE,
    "pcm_s16le": voice_pb2.AUDIO_FORMAT_PCM_S16LE,
}


def _set(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def compose_request(
    brief: str,
    *,
    num_scenes: int | None = None,
    style: str | None = None,
    seed: int | None = None,
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    image_format: str | int | None = None,
    voice: str | None = None,
    speaking_rate: float | None = None,
    audio_format: str | int | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    text_model: str | None = None,
    image_model: str | None = None,
    voice_model: str | None = None,
    image_style: str | None = None,
    reference_image: bytes | None = None,
    reference_scale: float | None = None,
    character_loras: Mapping[str, float] | None = None,
    same_seed: bool | None = None,
    request_id: str | None = None,
) -> studio_pb2.ComposeRequest:
    """A ComposeRequest; None leaves a field to the server's default.

    `text_model`, `image_model` and `voice_model` pick one of each family's
    registered models for its stage (`maestro models ls`). A consistent
    character: `reference_image` (IP-Adapter, on an image model with one) at
    `reference_scale`, `character_loras` ({name: weight}) and `same_seed`
    ride on every scene's image; `image_style` is the image model's preset.
    """
    if isinstance(image_format, str):
        image_format = _IMAGE_FORMATS[image_format.lower()]
    if isinstance(audio_format, str):
        audio_format = _AUDIO_FORMATS[audio_format.lower()]
    image = studio_pb2.ComposeImageSettings(
        **_set(
            {
                "width": width,
                "height": height,
                "steps": steps,
                "guidance_scale": guidance_scale,
                "format": image_format,
                "model": image_model,
                "style": image_style,
                "reference_image": reference_image,
                "reference_scale": reference_scale,
                "same_seed": same_seed,
            }
        ),
        loras=[
            image_pb2.LoraWeight(name=name, weight=weight)
            for name, weight in (character_loras or {}).items()
        ],
    )
    speech = studio_pb2.ComposeVoiceSettings(
        **_set(
            {
                "voice": voice,
                "speaking_rate": speaking_rate,
                "format": audio_format,
                "model": voice_model,
            }
        )
    )
    text = studio_pb2.ComposeTextSettings(
        **_set(
            {
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "model": text_model,
            }
        )
    )
    return studio_pb2.ComposeRequest(
        brief=brief,
        image=image,
        voice=speech,
        text=text,
        **_set(
            {
                "num_scenes": num_scenes,
                "style": style,
                "seed": seed,
                "request_id": request_id,
            }
        ),
    )


class StudioMethods:
    """Blocking StudioService calls."""

    channel: grpc.Channel
    _studio_stub: studio_pb2_grpc.StudioServiceStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _studio(self) -> studio_pb2_grpc.StudioServiceStub:
        if self._studio_stub is None:
            self._studio_stub = studio_pb2_grpc.StudioServiceStub(self.channel)
        return self._studio_stub

    def compose(
        self, brief: str, *, timeout: float | None = None, **params: Any
    ) -> Iterator[studio_pb2.ComposeResponse]:
        """Storyboard events; `params`: the keywords of `compose_request`."""
        call = self._studio().Compose(
            compose_request(brief, **params),
            timeout=self._deadline(timeout),
            metadata=self._metadata("studio", self._deadline(timeout)),
        )
        yield from server_stream(call)


class AsyncStudioMethods:
    """asyncio StudioService calls, same signatures as StudioMethods."""

    channel: grpc.aio.Channel
    _studio_stub: studio_pb2_grpc.StudioServiceStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _studio(self) -> studio_pb2_grpc.StudioServiceStub:
        if self._studio_stub is None:
            self._studio_stub = studio_pb2_grpc.StudioServiceStub(self.channel)
        return self._studio_stub

    async def compose(
        self, brief: str, *, timeout: float | None = None, **params: Any
    ) -> AsyncIterator[studio_pb2.ComposeResponse]:
        call = self._studio().Compose(
            compose_request(brief, **params),
            timeout=self._deadline(timeout),
            metadata=self._metadata("studio", self._deadline(timeout)),
        )
        # aclosing: an early close of this stream cancels the call at once.
        async with aclosing(aserver_stream(call)) as messages:
            async for message in messages:
                yield message
