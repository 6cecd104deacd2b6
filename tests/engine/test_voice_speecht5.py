"""The voice engine on the demo SpeechT5 checkpoint (real transformers, no Ray).

The demo's stop head never fires (models/voice_demo.py), so every segment ends
at the engine's length bound: `max_len_ratio` keeps these tests short.
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deployments.engines.voice.config import (
    SpeechT5Settings,
    VoiceBatchingConfig,
    VoiceEngineConfig,
)
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.speecht5 import (
    SpeechT5Row,
    SpeechT5Voice,
    StopRule,
    synthesize_rows,
)
from deployments.engines.voice.types import SpeechRequest
from deployments.errors import InvalidArgument, NotFound

pytestmark = pytest.mark.slow

MAX_LEN_RATIO = 4.0  # mel frames per token; 2 frames per decoder step
TEXT = "The quick brown fox jumps. She sells sea shells! How much wood? Peter ran."
LONG = " ".join(f"Sentence number {i} is here." for i in range(30))
FLOAT_TOLERANCE = 1e-5  # batched vs alone, float32 on CPU (measured ~3e-7)


def _pcm(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2")


@pytest.fixture(scope="module")
def checkpoint(demo_models: Path) -> Path:
    return demo_models / "voice-speecht5"


@pytest.fixture(scope="module")
async def engine(checkpoint: Path) -> AsyncIterator[VoiceEngine]:
    config = VoiceEngineConfig(
        model=str(checkpoint),
        model_id="demo-speecht5",
        batching=VoiceBatchingConfig(max_batch_size=4, max_wait_ms=20),
        speecht5=SpeechT5Settings(max_len_ratio=MAX_LEN_RATIO),
    )
    engine = VoiceEngine(config)
    await engine.start()
    yield engine
    await engine.shutdown()


@pytest.fixture(scope="module")
def voice(engine: VoiceEngine, checkpoint: Path) -> SpeechT5Voice:
    """The same checkpoint loaded on its own, for row-level checks."""
    return SpeechT5Voice.load(
        str(checkpoint),
        vocoder=str(checkpoint / "vocoder"),
        speakers=str(checkpoint / "speaker_embeddings.safetensors"),
        voices=None,
        torch_dtype=torch.float32,
        device="cpu",
        threshold=0.5,
        min_len_ratio=0.0,
        max_len_ratio=MAX_LEN_RATIO,
        max_segment_seconds=30.0,
    )


def _ids(engine: VoiceEngine, text: str) -> list[int]:
    return engine._tokenizer(text)["input_ids"]


async def test_the_checkpoint_config_picks_speecht5(
    engine: VoiceEngine, checkpoint: Path
) -> None:
    assert engine.ready and "SpeechT5" in engine.engine_name
    assert type(engine._model).__name__ == "SpeechT5ForTextToSpeech"
    assert engine.limits is not None
    assert engine.limits.voices == ("dara", "eli")
    vocoder = json.loads((checkpoint / "vocoder" / "config.json").read_text())
    assert engine.sample_rate == engine.limits.sample_rate
    assert engine.sample_rate == vocoder["sampling_rate"] == 16000
    info = engine.limits_info()
    assert info["speaking_rate"] == "[1.0, 1.0]" and info["voices"] == "dara, eli"
    # the vocoder's weights count too
    assert engine.memory_bytes() > sum(
        p.numel() * p.element_size() for p in engine._model.parameters()
    )


async def test_wav_reports_the_vocoders_sample_rate(engine: VoiceEngine) -> None:
    speech = await engine.synthesize(SpeechRequest(text="Hello there.", seed=1))
    with wave.open(io.BytesIO(speech.audio)) as wav:
        assert wav.getframerate() == speech.info.sample_rate == 16000
        frames = wav.getnframes()
    assert frames > 0
    assert speech.info.duration_seconds == pytest.approx(frames / 16000)


async def test_one_row_is_transformers_generate_with_the_same_dropout_masks(
    engine: VoiceEngine, voice: SpeechT5Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our loop is `_generate_speech`'s, only the prenet's dropout masks come
    from the row's generator: give transformers the same masks, get the same
    waveform."""
    from transformers.models.speecht5 import modeling_speecht5

    generator = torch.Generator()

    def same_masks(self, inputs_embeds, p):  # only the last frame is used
        mask = torch.zeros(inputs_embeds.shape[1:])
        odds = torch.full(inputs_embeds.shape[2:], p)
        mask[-1] = torch.bernoulli(odds, generator=generator)
        return torch.where(mask == 1, inputs_embeds, 0) * 1 / (1 - p)

    monkeypatch.setattr(
        modeling_speecht5.SpeechT5SpeechDecoderPrenet,
        "_consistent_dropout",
        same_masks,
    )
    ids = _ids(engine, "Hello there my friend.")
    for speaker in (0, 1):
        generator.manual_seed(11)
        with torch.no_grad():
            expected = voice.model.generate(
                torch.tensor([ids]),
                speaker_embeddings=voice.speakers[speaker][None],
                maxlenratio=MAX_LEN_RATIO,
                vocoder=voice.vocoder,
            )
        (ours,) = voice.synthesize([SpeechT5Row(ids, seed=11, speaker=speaker)])
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected.numpy(), rtol=0, atol=1e-6)


async def test_padded_batch_rows_match_unbatched_rows(
    engine: VoiceEngine, voice: SpeechT5Voice
) -> None:
    texts = ["hi", "a much longer sentence that goes on for a while", "medium one"]
    rows = [
        SpeechT5Row(_ids(engine, t), seed=100 + i, speaker=i % 2)
        for i, t in enumerate(texts)
    ]
    for row, out in zip(rows, voice.synthesize(rows), strict=True):
        (alone,) = voice.synthesize([row])
        assert out.shape == alone.shape
        np.testing.assert_allclose(out, alone, rtol=0, atol=FLOAT_TOLERANCE)


N_TOKENS = 25  # "Hello there, my friend.": 23 characters, a leading "▁", eos


@pytest.mark.parametrize(
    ("rule", "steps"),
    [
        # the demo's stop head never fires: max_len_ratio ends the row
        (StopRule(max_len_ratio=MAX_LEN_RATIO), int(N_TOKENS * MAX_LEN_RATIO / 2)),
        # the engine's hard cap (max_segment_seconds) beats the ratio
        (StopRule(max_len_ratio=20.0, max_steps_cap=5), 5),
        # a stop head that fires at once still runs min_len_ratio's steps
        (StopRule(threshold=1e-6, min_len_ratio=1.0), N_TOKENS // 2),
    ],
)
async def test_the_decoder_always_stops_within_its_bounds(
    engine: VoiceEngine, voice: SpeechT5Voice, rule: StopRule, steps: int
) -> None:
    ids = _ids(engine, "Hello there, my friend.")
    assert len(ids) == N_TOKENS
    (wave_,) = synthesize_rows(
        voice.model, voice.vocoder, voice.speakers, [SpeechT5Row(ids, 1)], rule
    )
    reduction = voice.model.config.reduction_factor
    assert len(wave_) == steps * reduction * voice.hop_length


async def test_same_seed_same_samples(engine: VoiceEngine) -> None:
    a = await engine.synthesize(SpeechRequest(text=TEXT, seed=5))
    b = await engine.synthesize(SpeechRequest(text=TEXT, seed=5))
    c = await engine.synthesize(SpeechRequest(text=TEXT, seed=6))
    assert a.audio == b.audio and a.audio != c.audio


async def test_the_two_voices_differ(engine: VoiceEngine) -> None:
    base = {"text": "Hello there my friend.", "seed": 3, "format": "pcm_s16le"}
    dara = await engine.synthesize(SpeechRequest(**base, voice="dara"))
    default = await engine.synthesize(SpeechRequest(**base))
    eli = await engine.synthesize(SpeechRequest(**base, voice="eli"))
    assert dara.audio == default.audio and dara.audio != eli.audio
    difference = _pcm(dara.audio).astype(int) - _pcm(eli.audio).astype(int)
    assert np.abs(difference).max() > 100  # audibly, not by rounding


async def test_stream_is_one_chunk_per_segment_last_on_the_final(
    engine: VoiceEngine,
) -> None:
    request = SpeechRequest(text=TEXT, seed=9, format="pcm_s16le", voice="eli")
    chunks = [chunk async for chunk in engine.stream(request)]
    assert [c.segment_index for c in chunks] == [0, 1, 2, 3]
    assert [c.last for c in chunks] == [False, False, False, True]
    assert chunks[0].segment_text == "The quick brown fox jumps."
    whole = await engine.synthesize(request)
    assert b"".join(c.audio for c in chunks) == whole.audio


async def test_unknown_voice_is_not_found_naming_the_voices(
    engine: VoiceEngine,
) -> None:
    with pytest.raises(NotFound, match="'ava' not found; available: dara, eli"):
        await engine.synthesize(SpeechRequest(text="hi", voice="ava"))


@pytest.mark.parametrize("rate", [0.5, 1.5])
async def test_only_the_natural_speaking_rate_is_served(
    engine: VoiceEngine, rate: float
) -> None:
    synthesized = engine.batcher.stats.items
    with pytest.raises(InvalidArgument) as info:
        await engine.synthesize(SpeechRequest(text="hi", speaking_rate=rate))
    assert info.value.field == "speaking_rate" and "[1.0, 1.0]" in str(info.value)
    assert engine.batcher.stats.items == synthesized
    ok = await engine.synthesize(SpeechRequest(text="hi", speaking_rate=1.0))
    assert ok.info.duration_seconds > 0


async def test_closing_a_stream_midway_leaves_the_engine_serving(
    engine: VoiceEngine,
) -> None:
    request = SpeechRequest(text="After the stream.", seed=4, format="pcm_s16le")
    before = await engine.synthesize(request)
    stats = engine.batcher.stats
    cancelled = stats.cancelled
    stream = engine.stream(SpeechRequest(text=LONG, seed=1))
    assert (await anext(stream)).segment_index == 0
    await stream.aclose()
    after = await engine.synthesize(request)
    assert after.audio == before.audio
    assert stats.cancelled - cancelled >= 27
    assert engine.batcher.queued == 0


async def test_cancelling_a_request_midway_leaves_the_engine_serving(
    engine: VoiceEngine,
) -> None:
    request = SpeechRequest(text="After the cancel.", seed=4, format="pcm_s16le")
    before = await engine.synthesize(request)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.stream(SpeechRequest(text=LONG, seed=2)):
            first.set()

    task = asyncio.ensure_future(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await engine.synthesize(request)
    assert after.audio == before.audio
    assert engine.batcher.queued == 0


async def test_segments_longer_than_the_text_positions_are_refused_at_start(
    checkpoint: Path,
) -> None:
    too_long = VoiceEngine(
        VoiceEngineConfig(model=str(checkpoint), max_segment_chars=449)
    )
    with pytest.raises(ValueError, match="at most 448 characters per segment"):
        await too_long.start()
    assert "failed to start" in too_long.status_message
