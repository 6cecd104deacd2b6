"""The voice engine: transformers VITS (MMS-TTS) or SpeechT5 behind an async API.

Usable without Ray: `engine = VoiceEngine(VoiceEngineConfig(model=...))`,
`await engine.start()`, then `engine.stream(request)` / `engine.synthesize(request)`.

A request's text is split into segments (`segmentation`); every segment is one
row for the batcher (`batching.InterleavedBatcher`), which synthesizes segments
of concurrent requests as one padded batch on a worker thread. A request's
segments run in order, one per batch, so a stream's first chunk is ready after
its first segment.

The checkpoint's config picks the backend (`_start_blocking`, the one place):
model_type "vits" runs `vits_batch.synthesize_rows`, "speecht5" runs
`speecht5.SpeechT5Voice` (autoregressive mels + HiFi-GAN vocoder, x-vector
voices, speaking rate fixed at 1.0). Both take rows with per-row seeds and
give each row's audio independent of its batch-mates.

Determinism: segment i of a request is synthesized with its own seed derived
from (request seed, i), from its own noise generator, so its samples depend
neither on its batch-mates nor on whether it was streamed. `synthesize` is
therefore exactly the concatenation of `stream`'s PCM. Segments are joined
with `pause_ms` of silence (appended to every segment but the last, in both
paths), not crossfaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deployments.engines.base import Engine, resolve_device, resolve_dtype
from deployments.engines.batching import InterleavedBatcher
from deployments.engines.memory import module_bytes
from deployments.engines.voice.audio import CHANNELS, AudioFormat, encode, to_pcm16
from deployments.engines.voice.config import (
    SPEAKER_FILE,
    VOICE_FILE,
    VoiceEngineConfig,
)
from deployments.engines.voice.segmentation import normalize, split_segments
from deployments.engines.voice.speecht5 import SpeechT5Row, SpeechT5Voice
from deployments.engines.voice.types import (
    AudioInfo,
    Speech,
    SpeechChunk,
    SpeechRequest,
    VoiceLimits,
    validate,
)
from deployments.engines.voice.vits_batch import VitsRow, synthesize_rows
from deployments.errors import InvalidArgument, Unavailable

__all__ = ["VoiceEngine", "segment_seed"]

logger = logging.getLogger(__name__)

Row = VitsRow | SpeechT5Row
# (token ids, seed, speaker index, speaking rate) -> the backend's row
RowMaker = Callable[[tuple[int, ...], int, int, float], Row]


def segment_seed(seed: int, index: int) -> int:
    """The noise seed of segment `index` of a request seeded `seed` (< 2**63)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class _Segment:
    index: int
    text: str  # as the client wrote it
    row: Row


class VoiceEngine(Engine):
    """Owns one VITS or SpeechT5 model, its tokenizer and the batcher feeding it."""

    family = "voice"
    config: VoiceEngineConfig

    def __init__(self, config: VoiceEngineConfig) -> None:
        super().__init__(config)
        self.limits: VoiceLimits | None = None
        self._engine_name = "transformers"
        self._model: Any = None  # VitsModel or SpeechT5ForTextToSpeech
        self._modules: tuple[Any, ...] = ()  # every torch module, for memory
        self._tokenizer: Any = None
        self._vocabulary: frozenset[str] = frozenset()
        self._make_row: RowMaker | None = None
        self._synthesize: Callable[[Sequence[Any]], list[np.ndarray]] | None = None
        self.batcher: InterleavedBatcher[Row, np.ndarray] = InterleavedBatcher(
            self._run_rows, config.batching, thread_name="voice-synthesis"
        )

    def memory_bytes(self) -> int | None:
        return None if self._model is None else module_bytes(self._modules)

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def sample_rate(self) -> int:
        return 0 if self.limits is None else self.limits.sample_rate

    @property
    def engine_name(self) -> str:
        return self._engine_name

    async def _load(self) -> None:
        """Load the checkpoint in a thread (the caller's loop keeps serving)."""
        await asyncio.to_thread(self._start_blocking)

    def _start_blocking(self) -> None:
        try:
            import torch
            from transformers import AutoConfig
        except ImportError as exc:  # pragma: no cover - install problem
            raise RuntimeError(
                "transformers/torch are not installed: pip install 'maestro[serve]'"
            ) from exc
        c = self.config
        if c.torch_threads:
            torch.set_num_threads(c.torch_threads)
        device = resolve_device(c.device)
        torch_dtype = getattr(torch, resolve_dtype(c.dtype, device))
        model_type = AutoConfig.from_pretrained(c.model).model_type
        backends = {"vits": self._start_vits, "speecht5": self._start_speecht5}
        if model_type not in backends:
            raise ValueError(
                f"{c.model} is a {model_type!r} model; the voice engine serves "
                f"{', '.join(backends)}"
            )
        backends[model_type](device, torch_dtype)
        self.device = (
            f"cuda:{torch.cuda.current_device()}" if device == "cuda" else device
        )

    def _start_vits(self, device: str, torch_dtype: Any) -> None:
        import transformers
        from transformers import VitsModel, VitsTokenizer

        c = self.config
        tokenizer = VitsTokenizer.from_pretrained(c.model)
        if tokenizer.phonemize:
            raise ValueError(
                f"{c.model} needs espeak phonemization, which Maestro does not run; "
                "use a character-level (MMS-TTS) checkpoint"
            )
        model = VitsModel.from_pretrained(c.model, dtype=torch_dtype)
        model = model.to(device).eval()
        voices = self._voices(model.config.num_speakers)
        self._vocabulary = frozenset(t for t in tokenizer.get_vocab() if len(t) == 1)
        self._tokenizer = tokenizer
        self._engine_name = f"transformers {transformers.__version__} VITS"
        self.limits = VoiceLimits(
            max_text_chars=c.max_text_chars,
            min_speaking_rate=c.min_speaking_rate,
            max_speaking_rate=c.max_speaking_rate,
            voices=voices,
            sample_rate=int(model.config.sampling_rate),
        )
        multi = len(voices) > 1
        self._make_row = lambda ids, seed, speaker, rate: VitsRow(
            input_ids=ids,
            seed=seed,
            speaker_id=speaker if multi else None,
            length_scale=1.0 / rate,
        )
        self._synthesize = lambda rows: synthesize_rows(model, rows)
        self._modules = (model,)
        self._model = model

    def _start_speecht5(self, device: str, torch_dtype: Any) -> None:
        import transformers
        from transformers import SpeechT5Tokenizer

        c, s = self.config, self.config.speecht5
        voice = SpeechT5Voice.load(
            c.model,
            vocoder=s.vocoder or str(Path(c.model) / "vocoder"),
            speakers=s.speakers or str(Path(c.model) / SPEAKER_FILE),
            voices=self._named_voices(),
            torch_dtype=torch_dtype,
            device=device,
            threshold=s.stop_threshold,
            min_len_ratio=s.min_len_ratio,
            max_len_ratio=s.max_len_ratio,
            max_segment_seconds=s.max_segment_seconds,
        )
        positions = voice.model.config.max_text_positions
        if c.max_segment_chars + 2 > positions:  # + a leading "▁" and eos
            raise ValueError(
                f"max_segment_chars {c.max_segment_chars} is too long for "
                f"{c.model}: at most {positions - 2} characters per segment"
            )
        tokenizer = SpeechT5Tokenizer.from_pretrained(c.model)
        # Character pieces; sentencepiece spells the space "▁".
        self._vocabulary = frozenset(
            " " if t == "\u2581" else t for t in tokenizer.get_vocab() if len(t) == 1
        )
        self._tokenizer = tokenizer
        self._engine_name = f"transformers {transformers.__version__} SpeechT5"
        # No duration control (VITS's length_scale): the rate range is [1, 1],
        # so validation refuses any other speaking_rate, naming the field.
        self.limits = VoiceLimits(
            max_text_chars=c.max_text_chars,
            min_speaking_rate=1.0,
            max_speaking_rate=1.0,
            voices=voice.voices,
            sample_rate=voice.sample_rate,
        )
        self._make_row = lambda ids, seed, speaker, rate: SpeechT5Row(
            input_ids=ids, seed=seed, speaker=speaker
        )
        self._synthesize = voice.synthesize
        self._modules = (voice.model, voice.vocoder)
        self._model = voice.model

    def _named_voices(self) -> tuple[str, ...] | None:
        """Voice names from the config, else the checkpoint's VOICE_FILE."""
        voices = self.config.voices
        names_file = Path(self.config.model) / VOICE_FILE
        if voices is None and names_file.is_file():
            voices = tuple(json.loads(names_file.read_text())["voices"])
        return voices

    def _voices(self, num_speakers: int) -> tuple[str, ...]:
        voices = self._named_voices()
        if voices is None:
            count = max(num_speakers, 1)
            voices = (
                ("default",)
                if count == 1
                else tuple(f"speaker_{i}" for i in range(count))
            )
        if len(voices) != max(num_speakers, 1) or len(set(voices)) != len(voices):
            raise ValueError(
                f"voices {list(voices)} must be {max(num_speakers, 1)} unique "
                "names, one per speaker of the checkpoint"
            )
        return voices

    async def _unload(self) -> None:
        self.batcher.close()
        self._model = None
        self._modules = ()
        self._synthesize = self._make_row = None

    async def synthesize(self, request: SpeechRequest) -> Speech:
        """The whole utterance as one file (or raw PCM)."""
        segments = self._plan(request)
        parts: list[np.ndarray] = []
        async with aclosing(self._pcm(segments)) as pcm_stream:
            async for _, pcm in pcm_stream:
                parts.append(pcm)
        pcm = np.concatenate(parts)
        fmt: AudioFormat = request.format  # type: ignore[assignment]
        audio = await asyncio.to_thread(encode, pcm, self.sample_rate, fmt)
        return Speech(audio=audio, info=self._info(pcm, fmt))

    async def stream(self, request: SpeechRequest) -> AsyncIterator[SpeechChunk]:
        """One chunk per segment, each sent as soon as it is synthesized.

        Closing or cancelling the iterator (a client deadline or disconnect)
        drops the request's remaining segments from the batcher's queue.
        """
        segments = self._plan(request)
        fmt: AudioFormat = request.format  # type: ignore[assignment]
        async with aclosing(self._pcm(segments)) as pcm_stream:
            async for segment, pcm in pcm_stream:
                audio = await asyncio.to_thread(encode, pcm, self.sample_rate, fmt)
                yield SpeechChunk(
                    audio=audio,
                    info=self._info(pcm, fmt),
                    segment_index=segment.index,
                    segment_text=segment.text,
                    last=segment.index == len(segments) - 1,
                )

    def _plan(self, request: SpeechRequest) -> list[_Segment]:
        """Validate, split, normalize and tokenize; raises before any work."""
        if self._model is None or self.limits is None or self._make_row is None:
            raise Unavailable(f"voice engine not ready: {self.status_message}")
        validate(request, self.limits)
        voices = self.limits.voices
        speaker = voices.index(request.voice) if request.voice else 0
        rate = request.speaking_rate or 1.0
        seed = secrets.randbits(63) if request.seed is None else request.seed
        segments: list[_Segment] = []
        for text in split_segments(request.text, self.config.max_segment_chars):
            spoken = normalize(text, self._vocabulary)
            if not spoken:
                continue  # e.g. only emoji or punctuation: nothing to say
            ids = self._tokenizer(spoken)["input_ids"]
            row = self._make_row(
                tuple(ids), segment_seed(seed, len(segments)), speaker, rate
            )
            segments.append(_Segment(len(segments), text, row))
        if not segments:
            raise InvalidArgument(
                field="text",
                allowed="text with letters or digits the model can speak",
                reason="nothing speakable after normalization",
                value=request.text,
            )
        return segments

    async def _pcm(
        self, segments: list[_Segment]
    ) -> AsyncIterator[tuple[_Segment, np.ndarray]]:
        """Each segment's 16-bit PCM (pause included), in order."""
        group = object()  # this request, for the batcher's one-per-batch rule
        futures = [self.batcher.submit(s.row, group=group) for s in segments]
        pause = np.zeros(self.sample_rate * self.config.pause_ms // 1000, np.int16)
        try:
            for segment, future in zip(segments, futures, strict=True):
                pcm = await future
                if segment.index < len(segments) - 1 and len(pause):
                    pcm = np.concatenate([pcm, pause])
                yield segment, pcm
        finally:
            for future in futures:
                future.cancel()  # no-op for finished ones

    def _run_rows(self, rows: list[Row]) -> list[np.ndarray]:
        """Batcher callback on the worker thread: one padded batch."""
        if self._synthesize is None:
            raise Unavailable("voice engine unloaded")
        return [to_pcm16(wave) for wave in self._synthesize(rows)]

    def _info(self, pcm: np.ndarray, fmt: AudioFormat) -> AudioInfo:
        return AudioInfo(
            sample_rate=self.sample_rate,
            channels=CHANNELS,
            format=fmt,
            duration_seconds=len(pcm) / self.sample_rate,
        )

    def limits_info(self) -> dict[str, str]:
        limits, c = self.limits, self.config
        if limits is None:
            return {}
        return {
            "max_text_chars": str(limits.max_text_chars),
            "max_segment_chars": str(c.max_segment_chars),
            "speaking_rate": f"[{limits.min_speaking_rate}, "
            f"{limits.max_speaking_rate}]",
            "voices": ", ".join(limits.voices),
            "default_voice": limits.voices[0],
            "formats": ", ".join(limits.formats),
            "sample_rate": str(limits.sample_rate),
            "max_batch_size": str(c.batching.max_batch_size),
        }

    def cache_form(self, request: SpeechRequest) -> dict[str, Any] | None:
        """Seeded requests, with the default voice and rate filled in."""
        if self.limits is None or request.seed is None:
            return None
        form = replace(
            request,
            request_id="",
            voice=request.voice or self.limits.voices[0],
            speaking_rate=request.speaking_rate or 1.0,
        )
        return self._identified(form)

    def stats(self) -> dict[str, str]:
        """Live counters for ListModels."""
        s = self.batcher.stats
        return {
            "queued_segments": str(self.batcher.queued),
            "running_segments": str(s.running),
            "batches_run": str(s.batches),
            "segments_synthesized": str(s.items),
            "segments_cancelled": str(s.cancelled),
            "batch_sizes": s.summary(),
        }
