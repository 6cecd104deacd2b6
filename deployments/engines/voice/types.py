"""Engine-level voice request/response types and their validation.

Pure Python (no torch, no protos) so converters and tests use them cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployments.engines.checks import check_length, check_range
from deployments.engines.voice.audio import FORMATS, AudioFormat
from deployments.errors import InvalidArgument, NotFound

__all__ = [
    "AudioInfo",
    "Speech",
    "SpeechChunk",
    "SpeechRequest",
    "VoiceLimits",
    "validate",
]


@dataclass(frozen=True)
class SpeechRequest:
    """One synthesis request, as the engine sees it. None/"" means "default"."""

    text: str
    voice: str = ""
    speaking_rate: float | None = None
    format: str = "wav"
    # Same seed, text and settings -> the same samples; None draws a fresh one.
    seed: int | None = None
    request_id: str = ""


@dataclass(frozen=True)
class VoiceLimits:
    """What the served model accepts; reported by ListModels."""

    max_text_chars: int
    min_speaking_rate: float
    max_speaking_rate: float
    voices: tuple[str, ...]
    sample_rate: int
    formats: tuple[AudioFormat, ...] = FORMATS


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    format: AudioFormat
    duration_seconds: float


@dataclass(frozen=True)
class Speech:
    """A whole utterance: one encoded file (or raw PCM) and what it holds."""

    audio: bytes
    info: AudioInfo


@dataclass(frozen=True)
class SpeechChunk:
    """One segment's audio; WAV/FLAC chunks are complete files."""

    audio: bytes
    info: AudioInfo
    segment_index: int
    segment_text: str
    last: bool


def validate(request: SpeechRequest, limits: VoiceLimits) -> None:
    """Reject what the engine cannot serve, naming the field and what is allowed.

    Whether the text has anything speakable is known only after normalization;
    the engine checks that.
    """
    text_allowed = f"1..{limits.max_text_chars} characters"
    if not request.text.strip():
        raise InvalidArgument(field="text", allowed=text_allowed, reason="empty")
    check_length("text", request.text, limits.max_text_chars, allowed=text_allowed)
    check_range(
        "speaking_rate",
        request.speaking_rate,
        limits.min_speaking_rate,
        limits.max_speaking_rate,
    )
    if request.format not in limits.formats:
        raise InvalidArgument(
            field="format", value=request.format, allowed=", ".join(limits.formats)
        )
    if request.voice and request.voice not in limits.voices:
        raise NotFound(what="voice", name=request.voice, available=list(limits.voices))
