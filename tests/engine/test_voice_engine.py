"""The voice engine on the demo VITS checkpoint (real transformers, no Ray)."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deployments.engines.voice.config import VoiceBatchingConfig, VoiceEngineConfig
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.types import SpeechRequest
from deployments.engines.voice.vits_batch import VitsRow, synthesize_rows
from deployments.errors import InvalidArgument, NotFound, Unavailable

pytestmark = pytest.mark.slow

TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells! "
    "How much wood would a woodchuck chuck, if it could? "
    "Peter picked a peck of peppers. The ragged rascal ran."
)
LONG = " ".join(f"Sentence number {i} is here." for i in range(40))
# Batched rows match unbatched ones to float32 rounding (vits_batch docs):
# at most 1e-4 on [-1, 1] samples, i.e. a few steps of 16-bit PCM.
FLOAT_TOLERANCE = 1e-4
PCM_TOLERANCE = 4


def _pcm(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2")


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[VoiceEngine]:
    config = VoiceEngineConfig(
        model=str(demo_models / "voice"),
        model_id="demo-tts",
        batching=VoiceBatchingConfig(max_batch_size=4, max_wait_ms=20),
    )
    engine = VoiceEngine(config)
    await engine.start()
    yield engine
    await engine.shutdown()


@pytest.fixture(scope="module")
def model(engine: VoiceEngine):  # the loaded VitsModel
    return engine._model


def _ids(engine: VoiceEngine, text: str) -> list[int]:
    return engine._tokenizer(text)["input_ids"]


async def test_reports_limits_voices_and_device(engine: VoiceEngine) -> None:
    assert engine.ready and engine.device == "cpu"
    assert engine.limits is not None
    assert engine.limits.voices == ("ava", "ben")
    assert engine.limits.sample_rate == 16000
    assert engine.engine_name.startswith("transformers")


async def test_one_row_equals_a_plain_transformers_call(
    engine: VoiceEngine, model
) -> None:
    ids = _ids(engine, "hello there my friend")
    for speaker in (0, 1):
        torch.manual_seed(11)
        with torch.no_grad():
            expected = model(torch.tensor([ids]), speaker_id=speaker).waveform[0]
        (ours,) = synthesize_rows(model, [VitsRow(ids, seed=11, speaker_id=speaker)])
        np.testing.assert_array_equal(ours, expected.numpy())


async def test_padded_batch_rows_match_unbatched_rows(
    engine: VoiceEngine, model
) -> None:
    texts = ["hi", "a much longer sentence that goes on for a while", "medium one"]
    rows = [
        VitsRow(_ids(engine, t), seed=100 + i, speaker_id=i % 2, length_scale=s)
        for i, (t, s) in enumerate(zip(texts, (1.0, 0.8, 1.25), strict=True))
    ]
    batched = synthesize_rows(model, rows)
    for row, out in zip(rows, batched, strict=True):
        (alone,) = synthesize_rows(model, [row])
        assert out.shape == alone.shape
        np.testing.assert_allclose(out, alone, rtol=0, atol=FLOAT_TOLERANCE)


async def test_same_seed_same_samples_other_seed_other_samples(
    engine: VoiceEngine,
) -> None:
    a = await engine.synthesize(SpeechRequest(text=TEXT, seed=5))
    b = await engine.synthesize(SpeechRequest(text=TEXT, seed=5))
    c = await engine.synthesize(SpeechRequest(text=TEXT, seed=6))
    assert a.audio == b.audio and a.audio != c.audio


async def test_wav_by_default_with_its_info(engine: VoiceEngine) -> None:
    speech = await engine.synthesize(SpeechRequest(text="Hello there.", seed=1))
    assert speech.audio[:4] == b"RIFF"
    with wave.open(io.BytesIO(speech.audio)) as wav:
        assert wav.getframerate() == speech.info.sample_rate == 16000
        assert wav.getnchannels() == speech.info.channels == 1
        frames = wav.getnframes()
    assert speech.info.format == "wav"
    assert speech.info.duration_seconds == pytest.approx(frames / 16000)
    assert speech.info.duration_seconds > 0


async def test_flac_output(engine: VoiceEngine) -> None:
    soundfile = pytest.importorskip("soundfile")
    request = SpeechRequest(text="Hello there.", seed=1, format="flac")
    speech = await engine.synthesize(request)
    pcm = await engine.synthesize(
        SpeechRequest(text="Hello there.", seed=1, format="pcm_s16le")
    )
    samples, rate = soundfile.read(io.BytesIO(speech.audio), dtype="int16")
    assert speech.audio[:4] == b"fLaC" and rate == 16000
    np.testing.assert_array_equal(samples, _pcm(pcm.audio))


async def test_stream_chunks_concatenate_to_the_whole(engine: VoiceEngine) -> None:
    request = SpeechRequest(text=TEXT, seed=9, format="pcm_s16le", voice="ben")
    whole = await engine.synthesize(request)
    chunks = [chunk async for chunk in engine.stream(request)]
    assert [c.segment_index for c in chunks] == list(range(5))
    assert [c.last for c in chunks] == [False] * 4 + [True]
    assert chunks[0].segment_text == "The quick brown fox jumps over the lazy dog."
    assert b"".join(c.audio for c in chunks) == whole.audio
    total = sum(c.info.duration_seconds for c in chunks)
    assert total == pytest.approx(whole.info.duration_seconds)


async def test_wav_stream_chunks_are_complete_files(engine: VoiceEngine) -> None:
    request = SpeechRequest(text=TEXT, seed=9)
    whole = await engine.synthesize(request)
    pcm = b""
    async for chunk in engine.stream(request):
        with wave.open(io.BytesIO(chunk.audio)) as wav:
            pcm += wav.readframes(-1)
    with wave.open(io.BytesIO(whole.audio)) as wav:
        assert pcm == wav.readframes(-1)


async def test_concurrent_requests_batch_and_match_alone(engine: VoiceEngine) -> None:
    requests = [
        SpeechRequest(
            text=TEXT, seed=20 + i, voice=("ava", "ben")[i % 2], format="pcm_s16le"
        )
        for i in range(4)
    ]
    before = dict(engine.batcher.stats.sizes)
    together = await asyncio.gather(*(engine.synthesize(r) for r in requests))
    sizes = engine.batcher.stats.sizes
    assert any(sizes[k] > before.get(k, 0) for k in sizes if k > 1)
    for request, speech in zip(requests, together, strict=True):
        alone = await engine.synthesize(request)
        a, b = _pcm(speech.audio).astype(int), _pcm(alone.audio).astype(int)
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= PCM_TOLERANCE


async def test_voices_and_rates_change_the_audio(engine: VoiceEngine) -> None:
    base = {"text": "Hello there my friend.", "seed": 3, "format": "pcm_s16le"}
    ava = await engine.synthesize(SpeechRequest(**base, voice="ava"))
    default = await engine.synthesize(SpeechRequest(**base))
    ben = await engine.synthesize(SpeechRequest(**base, voice="ben"))
    assert ava.audio == default.audio and ava.audio != ben.audio
    slow = await engine.synthesize(SpeechRequest(**base, speaking_rate=0.5))
    fast = await engine.synthesize(SpeechRequest(**base, speaking_rate=2.0))
    assert slow.info.duration_seconds > fast.info.duration_seconds


async def test_out_of_vocabulary_text_is_normalized_not_fatal(
    engine: VoiceEngine,
) -> None:
    speech = await engine.synthesize(
        SpeechRequest(text="Caf\u00e9 \U0001f600 \u201cquoted\u201d \u4f60 ok!", seed=1)
    )
    assert speech.info.duration_seconds > 0
    chunks = [c async for c in engine.stream(SpeechRequest(text="\U0001f600. Hi."))]
    assert [c.segment_text for c in chunks] == ["Hi."]  # nothing to say: skipped


@pytest.mark.parametrize(
    ("request_fields", "error", "field"),
    [
        ({"text": ""}, InvalidArgument, "text"),
        ({"text": "   "}, InvalidArgument, "text"),
        ({"text": "x" * 2001}, InvalidArgument, "text"),
        ({"text": "\U0001f600 \u4f60\u597d"}, InvalidArgument, "text"),
        ({"text": "hi", "speaking_rate": 0.1}, InvalidArgument, "speaking_rate"),
        ({"text": "hi", "speaking_rate": 9.0}, InvalidArgument, "speaking_rate"),
        ({"text": "hi", "format": "mp3"}, InvalidArgument, "format"),
        ({"text": "hi", "voice": "zed"}, NotFound, "zed"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_bad_input_is_refused_before_any_work(
    engine: VoiceEngine,
    request_fields: dict,
    error: type[Exception],
    field: str,
    streaming: bool,
) -> None:
    synthesized = engine.batcher.stats.items
    with pytest.raises(error) as info:
        if streaming:
            [c async for c in engine.stream(SpeechRequest(**request_fields))]
        else:
            await engine.synthesize(SpeechRequest(**request_fields))
    assert field in str(info.value)
    assert engine.batcher.stats.items == synthesized


async def test_unknown_model_is_not_found(engine: VoiceEngine) -> None:
    engine.check_model("")
    engine.check_model("demo-tts")
    with pytest.raises(NotFound, match="tts-9000"):
        engine.check_model("tts-9000")


async def test_closing_a_stream_stops_the_remaining_segments(
    engine: VoiceEngine,
) -> None:
    stats = engine.batcher.stats
    done, cancelled = stats.items, stats.cancelled
    stream = engine.stream(SpeechRequest(text=LONG, seed=1))
    first = await anext(stream)
    assert first.segment_index == 0
    await stream.aclose()
    await engine.synthesize(SpeechRequest(text="Flush the queue.", seed=1))
    assert stats.items - done <= 3  # first + at most one in flight + flush
    assert stats.cancelled - cancelled >= 37
    assert engine.batcher.queued == 0


async def test_a_deadline_stops_the_remaining_segments(engine: VoiceEngine) -> None:
    stats = engine.batcher.stats
    done = stats.items
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            engine.synthesize(SpeechRequest(text=LONG, seed=1)), timeout=0.2
        )
    await engine.synthesize(SpeechRequest(text="Flush the queue.", seed=1))
    assert stats.items - done < 40
    assert engine.batcher.queued == 0


async def test_the_event_loop_stays_free_during_synthesis(
    engine: VoiceEngine,
) -> None:
    ticks = 0
    task = asyncio.ensure_future(engine.synthesize(SpeechRequest(text=TEXT, seed=2)))
    while not task.done():
        await asyncio.sleep(0.005)
        ticks += 1
    await task
    assert ticks > 1


async def test_not_ready_engine_is_unavailable(demo_models: Path) -> None:
    cold = VoiceEngine(VoiceEngineConfig(model=str(demo_models / "voice")))
    with pytest.raises(Unavailable):
        await cold.synthesize(SpeechRequest(text="hi"))


async def test_voice_names_must_match_the_speakers(demo_models: Path) -> None:
    bad = VoiceEngine(
        VoiceEngineConfig(model=str(demo_models / "voice"), voices=("only-one",))
    )
    with pytest.raises(ValueError, match="one per speaker"):
        await bad.start()
    assert "failed to start" in bad.status_message
