"""Proto <-> engine conversions for the voice family; engines never see protos."""

from __future__ import annotations

from deployments.engines.voice.types import (
    AudioInfo,
    Speech,
    SpeechChunk,
    SpeechRequest,
)
from deployments.errors import InvalidArgument
from maestro.v1 import voice_pb2

__all__ = ["to_engine_request", "to_stream_response", "to_synthesize_response"]

# AUDIO_FORMAT_UNSPECIFIED means the default, WAV.
_FORMAT_IN = {
    voice_pb2.AUDIO_FORMAT_UNSPECIFIED: "wav",
    voice_pb2.AUDIO_FORMAT_WAV: "wav",
    voice_pb2.AUDIO_FORMAT_PCM_S16LE: "pcm_s16le",
    voice_pb2.AUDIO_FORMAT_FLAC: "flac",
}
_FORMAT_OUT = {
    "wav": voice_pb2.AUDIO_FORMAT_WAV,
    "pcm_s16le": voice_pb2.AUDIO_FORMAT_PCM_S16LE,
    "flac": voice_pb2.AUDIO_FORMAT_FLAC,
}


def to_engine_request(
    msg: voice_pb2.SynthesizeRequest | voice_pb2.StreamSpeechRequest,
    request_id: str,
) -> SpeechRequest:
    """Both request messages share field names and numbers, so one converter."""
    if msg.format not in _FORMAT_IN:  # proto3 enums are open: any int arrives
        raise InvalidArgument(
            field="format",
            value=msg.format,
            allowed="AUDIO_FORMAT_WAV, AUDIO_FORMAT_PCM_S16LE, AUDIO_FORMAT_FLAC",
        )
    return SpeechRequest(
        text=msg.text,
        voice=msg.voice,
        speaking_rate=msg.speaking_rate if msg.HasField("speaking_rate") else None,
        format=_FORMAT_IN[msg.format],
        seed=msg.seed if msg.HasField("seed") else None,
        request_id=request_id,
    )


def _info(info: AudioInfo) -> voice_pb2.AudioInfo:
    return voice_pb2.AudioInfo(
        sample_rate=info.sample_rate,
        channels=info.channels,
        format=_FORMAT_OUT[info.format],
        duration_seconds=info.duration_seconds,
    )


def to_synthesize_response(
    speech: Speech, *, model: str, request_id: str
) -> voice_pb2.SynthesizeResponse:
    return voice_pb2.SynthesizeResponse(
        audio=speech.audio, info=_info(speech.info), model=model, request_id=request_id
    )


def to_stream_response(
    chunk: SpeechChunk, *, request_id: str
) -> voice_pb2.StreamSpeechResponse:
    return voice_pb2.StreamSpeechResponse(
        audio=chunk.audio,
        info=_info(chunk.info),
        segment_index=chunk.segment_index,
        segment_text=chunk.segment_text,
        last=chunk.last,
        request_id=request_id,
    )
