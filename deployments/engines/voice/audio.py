"""Audio encoding for the voice family: 16-bit PCM as WAV, raw s16le or FLAC.

Engines produce float waveforms; everything a client receives is 16-bit
mono PCM, quantized once (`to_pcm16`) so that concatenating the PCM of a
stream's chunks gives exactly the PCM of the whole utterance. WAV and raw PCM
use only the standard library; FLAC needs `soundfile` (libsndfile, bundled in
its wheels), imported when first used.
"""

from __future__ import annotations

import io
import struct
import wave
from typing import Literal

import numpy as np

__all__ = [
    "FORMATS",
    "AudioFormat",
    "duration_seconds",
    "encode",
    "streaming_wav_header",
    "to_pcm16",
]

AudioFormat = Literal["wav", "pcm_s16le", "flac"]
FORMATS: tuple[AudioFormat, ...] = ("wav", "pcm_s16le", "flac")
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (clipped) to int16, rounding to nearest."""
    scaled = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0) * 32767.0
    return np.rint(scaled).astype(np.int16)


def duration_seconds(pcm: np.ndarray, sample_rate: int) -> float:
    return len(pcm) / float(sample_rate)


def encode(pcm: np.ndarray, sample_rate: int, fmt: AudioFormat) -> bytes:
    """Mono int16 samples as a complete file (WAV, FLAC) or raw s16le bytes."""
    samples = np.ascontiguousarray(pcm, dtype="<i2")
    if fmt == "pcm_s16le":
        return samples.tobytes()
    if fmt == "wav":
        return _wav(samples, sample_rate)
    if fmt == "flac":
        return _flac(samples, sample_rate)
    raise ValueError(f"unknown audio format {fmt!r}; known: {', '.join(FORMATS)}")


def _wav(samples: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(sample_rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header for PCM whose length is not known yet (a stream): the
    RIFF and data sizes are the largest values, as streaming servers send;
    players and `wave` read the samples that follow until the body ends."""
    block = CHANNELS * SAMPLE_WIDTH
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", 0xFFFFFFFF),
            b"WAVEfmt ",
            struct.pack(
                "<IHHIIHH", 16, 1, CHANNELS, sample_rate, sample_rate * block, block, 16
            ),
            b"data",
            struct.pack("<I", 0xFFFFFFFF - 36),
        )
    )


def _flac(samples: np.ndarray, sample_rate: int) -> bytes:
    try:
        import soundfile
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            "FLAC output needs soundfile: `pip install soundfile` "
            "(part of Maestro's `serve` extra)"
        ) from exc
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
