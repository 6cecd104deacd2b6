"""OpenAI's speech endpoint over HTTP, run by the voice RPCs.

`POST /v1/audio/speech` takes `model`, `input`, `voice`, `speed` and
`response_format` (wav, the default here; pcm: raw 16-bit little-endian mono
at the model's rate, sent in header `x-sample-rate`; flac), plus `seed`.
Without `stream_format` the whole file comes back (`Synthesize`). With
`stream_format: audio` the audio is streamed as it is synthesized
(`StreamSpeech`; wav gets a streaming header, flac cannot stream); with
`sse` as `speech.audio.delta` events (base64 chunks in the response format)
and a closing `speech.audio.done`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deployments.engines.voice.audio import streaming_wav_header
from deployments.errors import InvalidArgument
from deployments.openai_api import sse
from deployments.openai_api.calls import (
    HttpContext,
    converted,
    run_stream,
    run_unary,
)
from deployments.openai_api.fields import Body, reject_unsupported
from maestro.v1 import voice_pb2

__all__ = ["speech", "speech_request"]

_FORMATS = {
    "wav": (voice_pb2.AUDIO_FORMAT_WAV, "audio/wav"),
    "pcm": (voice_pb2.AUDIO_FORMAT_PCM_S16LE, "audio/pcm"),
    "flac": (voice_pb2.AUDIO_FORMAT_FLAC, "audio/flac"),
}
_STREAM_FORMATS = ("", "audio", "sse")
_UNSUPPORTED = {"instructions": "none (the demo voices take no instructions)"}


def speech_request(
    body: Body,
) -> voice_pb2.SynthesizeRequest | voice_pb2.StreamSpeechRequest:
    """An OpenAI audio/speech body as `SynthesizeRequest` (whole file) or
    `StreamSpeechRequest` (`stream_format` given)."""
    reject_unsupported(body, _UNSUPPORTED)
    fmt = body.string("response_format", "wav")
    if fmt not in _FORMATS:
        raise InvalidArgument(
            field="response_format", value=fmt, allowed=", ".join(_FORMATS)
        )
    stream_format = body.string("stream_format")
    if stream_format not in _STREAM_FORMATS:
        raise InvalidArgument(
            field="stream_format", value=stream_format, allowed="audio, sse"
        )
    if stream_format == "audio" and fmt == "flac":
        raise InvalidArgument(
            field="response_format",
            value=fmt,
            reason="flac cannot be streamed",
            allowed="wav or pcm with stream_format audio",
        )
    if not body.string("input"):
        raise InvalidArgument(field="input", allowed="the text to speak")
    seed = body.integer("seed")
    kind = (
        voice_pb2.StreamSpeechRequest if stream_format else voice_pb2.SynthesizeRequest
    )
    wire = fmt if stream_format != "audio" else "pcm"  # wav: header added here
    return kind(
        model=body.string("model"),
        text=body.string("input"),
        voice=body.string("voice"),
        speaking_rate=body.number("speed"),
        format=_FORMATS[wire][0],
        seed=seed,
        request_id=body.string("request_id"),
    )


def _whole(mime: str) -> Any:
    def render(reply: voice_pb2.SynthesizeResponse) -> Response:
        return Response(
            reply.audio,
            media_type=mime,
            headers={"x-sample-rate": str(reply.info.sample_rate)},
        )

    return render


async def _audio(
    replies: AsyncIterator[voice_pb2.StreamSpeechResponse], wav: bool
) -> AsyncIterator[bytes]:
    header_sent = not wav
    async for reply in replies:
        if reply.HasField("model_load"):
            continue  # raw audio has no place for a note; the wait is short
        if not header_sent:
            yield streaming_wav_header(reply.info.sample_rate)
            header_sent = True
        if reply.audio:
            yield reply.audio


async def _events(
    replies: AsyncIterator[voice_pb2.StreamSpeechResponse],
) -> AsyncIterator[bytes]:
    seconds = 0.0
    async for reply in replies:
        if reply.HasField("model_load"):
            yield sse.comment(f"waiting for model {reply.model_load.model}")
            continue
        seconds += reply.info.duration_seconds
        yield sse.event(
            {
                "type": "speech.audio.delta",
                "audio": base64.b64encode(reply.audio).decode(),
                "sample_rate": reply.info.sample_rate,
                "segment_index": reply.segment_index,
            }
        )
    yield sse.event({"type": "speech.audio.done", "duration_seconds": seconds})


async def speech(ingress: Any, request: Request) -> Response:
    """POST /v1/audio/speech."""
    body, message = await converted(request, speech_request)
    context = HttpContext(request.headers.items())
    fmt = body.string("response_format", "wav")
    if not isinstance(message, voice_pb2.StreamSpeechRequest):
        mime = _FORMATS.get(fmt, _FORMATS["wav"])[1]
        return await run_unary(ingress.Synthesize, message, context, _whole(mime))
    if body.string("stream_format") == "sse":
        return await run_stream(
            ingress.StreamSpeech,
            message,
            context,
            _events,
            media_type=sse.MEDIA_TYPE,
            on_error=sse.error_event,
        )
    return await run_stream(
        ingress.StreamSpeech,
        message,
        context,
        lambda replies: _audio(replies, wav=fmt == "wav"),
        media_type=_FORMATS[fmt][1],
        on_error=None,
        headers=_rate,
    )


def _rate(first: voice_pb2.StreamSpeechResponse) -> dict[str, str]:
    rate = first.info.sample_rate  # 0 when the first reply is a load notice
    return {"x-sample-rate": str(rate)} if rate else {}
