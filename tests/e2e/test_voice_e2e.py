"""End to end: the voice application of serve_config.yaml, through the client."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
import wave
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from maestro.v1 import models_pb2, voice_pb2

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells! "
    "How much wood would a woodchuck chuck, if it could? "
    "Peter picked a peck of peppers. The ragged rascal ran."
)
LONG = " ".join(f"Sentence number {i} is here." for i in range(40))
PCM = "pcm_s16le"
READY_S = 120


@pytest.fixture(scope="module")
def voice(server: str) -> str:
    """The server, once the voice application answers SERVING."""
    with MaestroClient(server, timeout=5) as client:
        client.wait_until_serving(READY_S, ["voice"])
    return server


@pytest.fixture
def client(voice: str):
    with MaestroClient(voice, timeout=60) as c:
        yield c


def _stats(client: MaestroClient) -> dict[str, str]:
    (model,) = default_models(client.list_models(["voice"]))
    return dict(model.stats)


def _settled(client: MaestroClient, timeout: float = 15.0) -> dict[str, str]:
    """Stats once the replica's queue is empty (cancellations counted)."""
    deadline = time.monotonic() + timeout
    while (stats := _stats(client))["queued_segments"] != "0" or (
        stats["running_segments"] != "0"
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return stats


def _pcm(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2")


def test_health_and_model_info(client: MaestroClient) -> None:
    assert client.health("voice", "maestro.v1.VoiceService") == (
        health_pb2.HealthCheckResponse.SERVING
    )
    (model,) = default_models(client.list_models(["voice"]))
    assert model.family == models_pb2.FAMILY_VOICE and model.ready
    assert model.id == "maestro-demo-tts" and model.engine.startswith("transformers")
    assert model.device == "cpu"
    assert model.limits["voices"] == "ava, ben"
    assert model.limits["speaking_rate"] == "[0.5, 2.0]"
    assert model.limits["formats"] == "wav, pcm_s16le, flac"
    assert {"batches_run", "batch_sizes", "segments_cancelled"} <= set(model.stats)


def test_synthesize_returns_a_wav_with_its_info(client: MaestroClient) -> None:
    reply = client.synthesize("Hello there, my friend.", seed=1)
    assert reply.model == "maestro-demo-tts" and reply.request_id
    info = reply.info
    assert info.format == voice_pb2.AUDIO_FORMAT_WAV
    assert (info.sample_rate, info.channels) == (16000, 1)
    with wave.open(io.BytesIO(reply.audio)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        assert wav.getnframes() / 16000 == pytest.approx(info.duration_seconds)
    assert info.duration_seconds > 0


def test_flac_and_seeded_determinism(client: MaestroClient) -> None:
    soundfile = pytest.importorskip("soundfile")
    flac = client.synthesize(TEXT, seed=4, format="flac", voice="ben")
    pcm = client.synthesize(TEXT, seed=4, format=PCM, voice="ben")
    again = client.synthesize(TEXT, seed=4, format=PCM, voice="ben")
    other = client.synthesize(TEXT, seed=5, format=PCM, voice="ben")
    assert flac.audio[:4] == b"fLaC"
    assert flac.info.format == voice_pb2.AUDIO_FORMAT_FLAC
    samples, rate = soundfile.read(io.BytesIO(flac.audio), dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(samples, _pcm(pcm.audio))
    assert pcm.audio == again.audio != other.audio


def test_stream_chunks_concatenate_to_synthesize(client: MaestroClient) -> None:
    whole = client.synthesize(TEXT, seed=8, format=PCM)
    chunks = list(client.stream_speech(TEXT, seed=8, format=PCM))
    assert [c.segment_index for c in chunks] == [0, 1, 2, 3, 4]
    assert [c.last for c in chunks] == [False, False, False, False, True]
    assert chunks[1].segment_text == "She sells sea shells!"
    assert all(c.info.format == voice_pb2.AUDIO_FORMAT_PCM_S16LE for c in chunks)
    assert b"".join(c.audio for c in chunks) == whole.audio
    wav_chunks = list(client.stream_speech(TEXT, seed=8))
    assert all(c.audio[:4] == b"RIFF" for c in wav_chunks)


async def test_concurrent_requests_match_alone(voice: str) -> None:
    async with AsyncMaestroClient(voice, timeout=60) as client:
        seeds = range(30, 34)
        together = await asyncio.gather(
            *(client.synthesize(TEXT, seed=s, format=PCM) for s in seeds)
        )
        for seed, reply in zip(seeds, together, strict=True):
            alone = await client.synthesize(TEXT, seed=seed, format=PCM)
            a = _pcm(reply.audio).astype(int)
            b = _pcm(alone.audio).astype(int)
            # Batched rows equal unbatched ones up to float32 rounding.
            assert a.shape == b.shape and np.abs(a - b).max() <= 4


@pytest.mark.parametrize(
    ("kwargs", "code", "named"),
    [
        ({"text": ""}, grpc.StatusCode.INVALID_ARGUMENT, "text"),
        ({"text": "x" * 2001}, grpc.StatusCode.INVALID_ARGUMENT, "text"),
        ({"text": "\U0001f600"}, grpc.StatusCode.INVALID_ARGUMENT, "text"),
        (
            {"text": "hi", "speaking_rate": 3.0},
            grpc.StatusCode.INVALID_ARGUMENT,
            "speaking_rate",
        ),
        ({"text": "hi", "format": 7}, grpc.StatusCode.INVALID_ARGUMENT, "format"),
        ({"text": "hi", "voice": "zed"}, grpc.StatusCode.NOT_FOUND, "zed"),
        ({"text": "hi", "model": "tts-9000"}, grpc.StatusCode.NOT_FOUND, "tts-9000"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_bad_input_gets_a_clear_status(
    client: MaestroClient,
    kwargs: dict,
    code: grpc.StatusCode,
    named: str,
    streaming: bool,
) -> None:
    kwargs = dict(kwargs)
    text = kwargs.pop("text")
    with pytest.raises(MaestroRpcError) as info:
        if streaming:
            list(client.stream_speech(text, **kwargs))
        else:
            client.synthesize(text, **kwargs)
    assert info.value.code == code
    assert named in info.value.details and "Traceback" not in info.value.details
    assert client.synthesize("still fine").info.duration_seconds > 0


def test_disconnect_stops_the_remaining_segments(client: MaestroClient) -> None:
    before = _settled(client)
    stream = client.stream_speech(LONG, seed=1, format=PCM)
    assert next(stream).segment_index == 0
    stream.close()  # cancels the RPC
    after = _settled(client)
    done = int(after["segments_synthesized"]) - int(before["segments_synthesized"])
    dropped = int(after["segments_cancelled"]) - int(before["segments_cancelled"])
    assert done < 10 and dropped >= 30


def test_deadline_stops_the_remaining_segments(client: MaestroClient) -> None:
    before = _settled(client)
    with pytest.raises(MaestroRpcError) as info:
        client.synthesize(LONG, seed=1, timeout=0.3)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    after = _settled(client)
    dropped = int(after["segments_cancelled"]) - int(before["segments_cancelled"])
    assert dropped >= 20
    assert client.synthesize("still fine").info.duration_seconds > 0


def test_cli_speak_writes_audio_files(voice: str, tmp_path: Path) -> None:
    cli = [str(Path(sys.executable).parent / "maestro"), "--target", voice]
    out = tmp_path / "out.wav"
    run = subprocess.run(
        [*cli, "speak", "Hello there. How are you?", "-o", str(out), "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "16000 Hz" in run.stderr
    with wave.open(str(out)) as wav:
        unary = wav.readframes(-1)
        assert wav.getframerate() == 16000 and len(unary) > 0
    streamed = tmp_path / "streamed.wav"
    run = subprocess.run(
        [*cli, "speak", "Hello there. How are you?", "-o", str(streamed)]
        + ["--seed", "3", "--stream", "--voice", "ava", "--rate", "1.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "segment 1:" in run.stderr
    with wave.open(str(streamed)) as wav:
        assert wav.readframes(-1) == unary
    flac = tmp_path / "out.flac"
    subprocess.run(
        [*cli, "speak", "Hi.", "-o", str(flac), "--voice", "ben"],
        timeout=60,
        check=True,
        capture_output=True,
    )
    assert flac.read_bytes()[:4] == b"fLaC"
    bad = subprocess.run(
        [*cli, "speak", "hi", "-o", str(out), "--rate", "9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "INVALID_ARGUMENT: speaking_rate" in bad.stderr
    bad = subprocess.run(
        [*cli, "speak", "hi", "-o", str(out), "--voice", "zed"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr


def test_models_can_be_loaded_by_an_admin_key(client: MaestroClient) -> None:
    (default,) = default_models(client.list_models(["voice"]))
    info = client.load_model(default.id)  # the family is found from ListModels
    assert info.id == default.id and info.ready
    assert info.stats["state"] == "loaded" and info.stats["default"] == "true"
    with pytest.raises(MaestroRpcError) as error:
        client.load_model("no-such-voice-model", family="voice")
    assert error.value.code == grpc.StatusCode.NOT_FOUND
    assert default.id in error.value.details  # names the registered ids


SOLO = "maestro-demo-tts-solo"  # serve_config.yaml's second voice model


def test_a_lazy_model_loads_on_its_first_stream_which_says_so(
    client: MaestroClient,
) -> None:
    if {m.id: m for m in client.list_models(["voice"])}[SOLO].ready:
        client.unload_model(SOLO)  # an earlier test used it
    rows = {m.id: m for m in client.list_models(["voice"])}
    assert rows[SOLO].stats["state"] == "available" and not rows[SOLO].ready
    messages = list(client.stream_speech("Hello there.", model=SOLO))
    first, rest = messages[0], messages[1:]
    assert first.HasField("model_load") and not first.audio
    assert (first.model_load.model, first.model_load.state) == (SOLO, "loading")
    assert rest and not any(m.HasField("model_load") for m in rest)
    assert {m.info.sample_rate for m in rest} == {22_050}  # the solo checkpoint
    assert rest[-1].last
    # Loaded now: the next stream starts with audio, and the default model
    # stayed loaded beside it (max_loaded_models 2).
    again = list(client.stream_speech("Hello there.", model=SOLO))
    assert not any(m.HasField("model_load") for m in again)
    rows = {m.id: m for m in client.list_models(["voice"])}
    assert rows[SOLO].stats["state"] == "loaded" and rows[SOLO].ready
    assert float(rows[SOLO].stats["load_seconds"]) > 0
    assert int(rows[SOLO].stats["memory_bytes"]) > 0  # its weights
    (default,) = default_models(rows.values())
    assert default.stats["state"] == "loaded"


def test_a_second_architecture_speaks_through_the_same_api(
    client: MaestroClient,
) -> None:
    speecht5 = "maestro-demo-speecht5"  # SpeechT5 + HiFi-GAN, not VITS
    messages = list(
        client.stream_speech("Hello there. Bye.", model=speecht5, voice="eli")
    )
    chunks = [m for m in messages if not m.HasField("model_load")]
    assert [c.segment_index for c in chunks] == [0, 1] and chunks[-1].last
    assert {c.info.sample_rate for c in chunks} == {16_000}
    whole = client.synthesize("Hello there. Bye.", model=speecht5, voice="eli", seed=3)
    assert whole.model == speecht5 and whole.info.duration_seconds > 0
    with pytest.raises(MaestroRpcError) as bad:
        client.synthesize("Hello.", model=speecht5, speaking_rate=1.5)
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "speaking_rate" in bad.value.details
