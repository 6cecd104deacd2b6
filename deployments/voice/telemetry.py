"""The voice family's engine span and metrics, observed from the deployment.

`request_span` wraps one request in a `voice.engine.<op>` span (segments,
audio seconds, real-time factor) and records `maestro_voice_*`: time to the
first chunk (StreamSpeech), real-time factor and seconds of audio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from deployments.engines.voice.segmentation import split_segments
from deployments.engines.voice.types import Speech, SpeechChunk, SpeechRequest
from deployments.spans import ending
from observability import metrics, tracing

__all__ = ["SpeechObserver", "request_span"]


class SpeechObserver:
    """What one request produced, fed by the deployment as audio comes out."""

    def __init__(self, segments: int) -> None:
        self.started = time.monotonic()
        self.segments = segments
        self.chunks = 0
        self.audio_seconds = 0.0

    def chunk(self, chunk: SpeechChunk) -> None:
        if self.chunks == 0:
            metrics.observe(
                "maestro_voice_time_to_first_chunk_seconds",
                time.monotonic() - self.started,
            )
        self.chunks += 1
        self.audio_seconds += chunk.info.duration_seconds

    def speech(self, speech: Speech) -> None:
        self.audio_seconds += speech.info.duration_seconds


@contextmanager
def request_span(
    op: str, request: SpeechRequest, *, max_segment_chars: int
) -> Iterator[SpeechObserver]:
    """The request's `voice.engine.<op>` span; feed the observer its audio."""
    segments = len(split_segments(request.text, max_segment_chars))
    span = tracing.start_span(
        f"voice.engine.{op}",
        {"maestro.voice.segments": segments, "maestro.voice.chars": len(request.text)},
    )
    observer = SpeechObserver(segments)
    with ending(span):
        try:
            yield observer
        finally:
            audio = observer.audio_seconds
            if audio > 0:
                rtf = (time.monotonic() - observer.started) / audio
                metrics.inc("maestro_voice_audio_seconds", audio)
                metrics.observe("maestro_voice_real_time_factor", rtf)
                if span.is_recording():
                    span.set_attribute("maestro.voice.audio_seconds", audio)
                    span.set_attribute("maestro.voice.real_time_factor", rtf)
