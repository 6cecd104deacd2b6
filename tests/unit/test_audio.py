"""Audio encoders: valid WAV/FLAC files, raw PCM, quantization."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest

from deployments.engines.voice.audio import encode, to_pcm16

RATE = 16_000


def _tone(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return to_pcm16(0.5 * np.sin(2 * np.pi * 440 * t))


def test_to_pcm16_rounds_and_clips() -> None:
    pcm = to_pcm16(np.array([0.0, 1.0, -1.0, 2.0, -3.0, 0.5, 1e-6]))
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [0, 32767, -32767, 32767, -32767, 16384, 0]


def test_wav_has_a_valid_header_rate_and_duration() -> None:
    pcm = _tone(0.5)
    data = encode(pcm, RATE, "wav")
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == RATE
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        assert wav.getnframes() / RATE == pytest.approx(0.5)
        assert np.array_equal(np.frombuffer(wav.readframes(-1), "<i2"), pcm)


def test_flac_has_a_valid_header_rate_and_duration() -> None:
    soundfile = pytest.importorskip("soundfile")
    pcm = _tone(0.25)
    data = encode(pcm, RATE, "flac")
    assert data[:4] == b"fLaC"
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert rate == RATE and len(samples) / rate == pytest.approx(0.25)
    assert np.array_equal(samples, pcm)  # lossless
    assert soundfile.info(io.BytesIO(data)).channels == 1


def test_raw_pcm_is_little_endian_int16() -> None:
    pcm = np.array([1, -2, 300], dtype=np.int16)
    assert encode(pcm, RATE, "pcm_s16le") == b"\x01\x00\xfe\xff\x2c\x01"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="mp3"):
        encode(_tone(0.01), RATE, "mp3")  # type: ignore[arg-type]
