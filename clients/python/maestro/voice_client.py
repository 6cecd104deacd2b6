"""Voice methods of the typed clients (`synthesize`, `stream_speech`).

Mixed into `MaestroClient` / `AsyncMaestroClient`, which provide `channel`
and `_deadline`. `format` takes "wav", "pcm_s16le" (alias "pcm") or "flac",
or an `AudioFormat` value; `format_for_path` picks it from a file name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar

import grpc

from maestro.errors import rpc_error as _error
from maestro.retry import acall_with_retry, call_with_retry, seeded_policy
from maestro.streams import aserver_stream, server_stream
from maestro.v1 import voice_pb2, voice_pb2_grpc

__all__ = [
    "AUDIO_FORMATS",
    "AsyncVoiceMethods",
    "VoiceMethods",
    "format_for_path",
    "speech_request",
]

Msg = TypeVar("Msg")
AUDIO_FORMATS = {
    "wav": voice_pb2.AUDIO_FORMAT_WAV,
    "pcm_s16le": voice_pb2.AUDIO_FORMAT_PCM_S16LE,
    "pcm": voice_pb2.AUDIO_FORMAT_PCM_S16LE,
    "flac": voice_pb2.AUDIO_FORMAT_FLAC,
}
_EXTENSIONS = {".wav": "wav", ".flac": "flac", ".pcm": "pcm_s16le", ".raw": "pcm_s16le"}


def format_for_path(path: str | Path) -> str:
    """The audio format a file name asks for: .wav, .flac, .pcm/.raw (s16le)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ValueError(
            f"cannot tell the audio format of {str(path)!r}; "
            f"use one of {', '.join(_EXTENSIONS)}"
        )
    return _EXTENSIONS[suffix]


def speech_request(
    cls: type[Msg],
    text: str,
    *,
    voice: str | None = None,
    speaking_rate: float | None = None,
    format: str | int | None = None,
    seed: int | None = None,
    **params: Any,
) -> Msg:
    """A SynthesizeRequest/StreamSpeechRequest; None params are left unset."""
    if isinstance(format, str):
        format = AUDIO_FORMATS[format.lower()]
    fields = {
        "voice": voice,
        "speaking_rate": speaking_rate,
        "format": format,
        "seed": seed,
        **params,
    }
    return cls(text=text, **{k: v for k, v in fields.items() if v is not None})


class VoiceMethods:
    """Blocking VoiceService calls."""

    channel: grpc.Channel
    _voice_stub: voice_pb2_grpc.VoiceServiceStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _voice(self) -> voice_pb2_grpc.VoiceServiceStub:
        if self._voice_stub is None:
            self._voice_stub = voice_pb2_grpc.VoiceServiceStub(self.channel)
        return self._voice_stub

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        speaking_rate: float | None = None,
        format: str | int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> voice_pb2.SynthesizeResponse:
        """The whole utterance; `params`: other SynthesizeRequest fields."""
        request = speech_request(
            voice_pb2.SynthesizeRequest,
            text,
            voice=voice,
            speaking_rate=speaking_rate,
            format=format,
            seed=seed,
            **params,
        )
        try:
            return call_with_retry(
                lambda t: self._voice().Synthesize(
                    request,
                    timeout=t,
                    metadata=self._metadata("voice", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise _error(error) from None

    def stream_speech(
        self,
        text: str,
        *,
        voice: str | None = None,
        speaking_rate: float | None = None,
        format: str | int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Iterator[voice_pb2.StreamSpeechResponse]:
        """Audio chunks as segments finish; closing the iterator cancels."""
        request = speech_request(
            voice_pb2.StreamSpeechRequest,
            text,
            voice=voice,
            speaking_rate=speaking_rate,
            format=format,
            seed=seed,
            **params,
        )
        call = self._voice().StreamSpeech(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("voice", self._deadline(timeout), request.model),
        )
        yield from server_stream(call)


class AsyncVoiceMethods:
    """asyncio VoiceService calls, same signatures as VoiceMethods."""

    channel: grpc.aio.Channel
    _voice_stub: voice_pb2_grpc.VoiceServiceStub | None = None

    def _deadline(self, timeout: float | None) -> float | None:
        raise NotImplementedError  # pragma: no cover - provided by the client

    def _voice(self) -> voice_pb2_grpc.VoiceServiceStub:
        if self._voice_stub is None:
            self._voice_stub = voice_pb2_grpc.VoiceServiceStub(self.channel)
        return self._voice_stub

    async def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        speaking_rate: float | None = None,
        format: str | int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> voice_pb2.SynthesizeResponse:
        request = speech_request(
            voice_pb2.SynthesizeRequest,
            text,
            voice=voice,
            speaking_rate=speaking_rate,
            format=format,
            seed=seed,
            **params,
        )
        try:
            return await acall_with_retry(
                lambda t: self._voice().Synthesize(
                    request,
                    timeout=t,
                    metadata=self._metadata("voice", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise _error(error) from None

    async def stream_speech(
        self,
        text: str,
        *,
        voice: str | None = None,
        speaking_rate: float | None = None,
        format: str | int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> AsyncIterator[voice_pb2.StreamSpeechResponse]:
        request = speech_request(
            voice_pb2.StreamSpeechRequest,
            text,
            voice=voice,
            speaking_rate=speaking_rate,
            format=format,
            seed=seed,
            **params,
        )
        call = self._voice().StreamSpeech(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("voice", self._deadline(timeout), request.model),
        )
        # aclosing: an early close of this stream cancels the call at once.
        async with aclosing(aserver_stream(call)) as messages:
            async for message in messages:
                yield message
