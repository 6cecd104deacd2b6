"""`maestro speak "text" -o out.wav`: synthesize speech into a file.

The format comes from the file's extension (.wav, .flac, .pcm/.raw for raw
16-bit little-endian PCM). `--stream` calls StreamSpeech and writes each
chunk the moment it arrives, so the file grows while later sentences are
still being synthesized (chunks are requested as raw PCM and written into one
WAV/FLAC container). Ctrl-C cancels the request on the server.
"""

from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from maestro.cli_progress import waiting_for_model
from maestro.client import MaestroClient
from maestro.v1 import voice_pb2
from maestro.voice_client import format_for_path

__all__ = ["add_speak_parser"]


class _PcmWriter(Protocol):
    def write(self, pcm: bytes) -> None: ...
    def close(self) -> None: ...


class _RawWriter:
    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")

    def write(self, pcm: bytes) -> None:
        self._file.write(pcm)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _WavWriter:
    """Header rewritten after every chunk, so the file plays at any moment."""

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)

    def close(self) -> None:
        self._wav.close()


class _FlacWriter:
    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        try:
            import soundfile
        except ImportError:
            raise SystemExit(
                "maestro: FLAC with --stream needs soundfile "
                "(pip install soundfile), or drop --stream"
            ) from None
        self._file = soundfile.SoundFile(
            str(path), "w", sample_rate, channels, "PCM_16", format="FLAC"
        )

    def write(self, pcm: bytes) -> None:
        import numpy as np

        self._file.write(np.frombuffer(pcm, dtype="<i2"))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _writer(path: Path, fmt: str, info: voice_pb2.AudioInfo) -> _PcmWriter:
    if fmt == "wav":
        return _WavWriter(path, info.sample_rate, info.channels)
    if fmt == "flac":
        return _FlacWriter(path, info.sample_rate, info.channels)
    return _RawWriter(path)


def _summary(path: Path, fmt: str, sample_rate: int, seconds: float) -> str:
    return f"[{path}: {fmt}, {sample_rate} Hz, mono, {seconds:.2f} s of audio]"


def _speak(client: MaestroClient, args: argparse.Namespace) -> int:
    out = Path(args.output)
    try:
        fmt = format_for_path(out)
    except ValueError as error:
        print(f"maestro: {error}", file=sys.stderr)
        return 2
    params: dict[str, Any] = {
        "voice": args.voice,
        "speaking_rate": args.rate,
        "seed": args.seed,
        "model": args.model,
    }
    if not args.stream:
        reply = client.synthesize(args.text, format=fmt, **params)
        out.write_bytes(reply.audio)
        info = reply.info
        summary = _summary(out, fmt, info.sample_rate, info.duration_seconds)
        print(summary, file=sys.stderr)
        return 0
    writer: _PcmWriter | None = None
    seconds, sample_rate = 0.0, 0
    try:
        for chunk in client.stream_speech(args.text, format="pcm_s16le", **params):
            if waiting_for_model(chunk):
                continue
            if writer is None:
                sample_rate = chunk.info.sample_rate
                writer = _writer(out, fmt, chunk.info)
            writer.write(chunk.audio)
            seconds += chunk.info.duration_seconds
            print(
                f"segment {chunk.segment_index}: {chunk.info.duration_seconds:.2f} s"
                f"  {chunk.segment_text}",
                file=sys.stderr,
            )
    finally:
        if writer is not None:
            writer.close()
    print(_summary(out, fmt, sample_rate, seconds), file=sys.stderr)
    return 0


def add_speak_parser(subparsers: Any) -> None:
    """Register the `speak` subcommand on the `maestro` parser."""
    speak = subparsers.add_parser("speak", help="synthesize speech into a file")
    speak.add_argument("text")
    speak.add_argument(
        "-o", "--output", default="speech.wav", help="file; .wav, .flac, .pcm/.raw"
    )
    speak.add_argument("--voice", help="speaker name (see `maestro models --json`)")
    speak.add_argument("--rate", type=float, help="speaking rate, 1.0 is normal")
    speak.add_argument("--seed", type=int, help="same seed, same samples")
    speak.add_argument("--model", help="model id (default: the served one)")
    speak.add_argument(
        "--stream",
        action="store_true",
        help="StreamSpeech: write each sentence's audio as it arrives",
    )
    speak.set_defaults(run=_speak)
