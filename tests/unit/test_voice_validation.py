"""Voice requests: validation, proto conversion and the app's config."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from deployments.engines.voice.config import VoiceEngineConfig
from deployments.engines.voice.engine import segment_seed
from deployments.engines.voice.types import SpeechRequest, VoiceLimits, validate
from deployments.errors import InvalidArgument, NotFound
from deployments.voice.config import VoiceAppConfig
from deployments.voice.converters import to_engine_request
from maestro.v1 import voice_pb2
from tests.helpers import ROOT

LIMITS = VoiceLimits(
    max_text_chars=50,
    min_speaking_rate=0.5,
    max_speaking_rate=2.0,
    voices=("ava", "ben"),
    sample_rate=16000,
)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": " \n\t"}, "text"),
        ({"text": "x" * 51}, "text"),
        ({"speaking_rate": 0.49}, "speaking_rate"),
        ({"speaking_rate": 2.01}, "speaking_rate"),
        ({"speaking_rate": float("nan")}, "speaking_rate"),
        ({"speaking_rate": float("inf")}, "speaking_rate"),
        ({"format": "mp3"}, "format"),
    ],
)
def test_bad_fields_are_named_with_what_is_allowed(changes: dict, field: str) -> None:
    request = SpeechRequest(**{"text": "hello", **changes})
    with pytest.raises(InvalidArgument) as info:
        validate(request, LIMITS)
    assert info.value.field == field and "allowed" in str(info.value)


def test_unknown_voice_is_not_found_listing_the_voices() -> None:
    with pytest.raises(NotFound, match="'zed' not found; available: ava, ben"):
        validate(SpeechRequest(text="hi", voice="zed"), LIMITS)


def test_good_requests_pass() -> None:
    for request in (
        SpeechRequest(text="hi"),
        SpeechRequest(text="x" * 50, voice="ben", speaking_rate=2.0, format="flac"),
        SpeechRequest(text="hi", speaking_rate=0.5, format="pcm_s16le", seed=-3),
    ):
        validate(request, LIMITS)


def test_converter_maps_formats_and_optional_fields() -> None:
    msg = voice_pb2.StreamSpeechRequest(text="hi", voice="ben", seed=0)
    request = to_engine_request(msg, "r1")
    assert (request.format, request.seed, request.speaking_rate) == ("wav", 0, None)
    assert request.voice == "ben" and request.request_id == "r1"
    msg = voice_pb2.SynthesizeRequest(
        text="hi", format=voice_pb2.AUDIO_FORMAT_FLAC, speaking_rate=1.5
    )
    request = to_engine_request(msg, "r2")
    assert (request.format, request.seed, request.speaking_rate) == ("flac", None, 1.5)
    pcm = voice_pb2.AUDIO_FORMAT_PCM_S16LE
    assert to_engine_request(voice_pb2.SynthesizeRequest(format=pcm), "").format == (
        "pcm_s16le"
    )


def test_converter_refuses_an_unknown_format_number() -> None:
    with pytest.raises(InvalidArgument) as info:
        to_engine_request(voice_pb2.SynthesizeRequest(text="hi", format=7), "r")
    assert info.value.field == "format" and info.value.value == 7


def test_segment_seeds_are_stable_distinct_and_in_range() -> None:
    seeds = [segment_seed(s, i) for s in (0, 1, -5, 2**62) for i in range(4)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    assert segment_seed(7, 2) == segment_seed(7, 2)


def _voice_args(name: str) -> dict:
    raw = yaml.safe_load((ROOT / name).read_text())
    (voice,) = [a for a in raw["applications"] if a["name"] == "voice"]
    assert voice["import_path"] == "deployments.voice:build_app"
    assert voice["deployments"][0]["name"] == "Voice"
    return voice["args"]


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.gpu.yaml"])
def test_serve_configs_have_valid_voice_args(name: str) -> None:
    VoiceAppConfig.model_validate(_voice_args(name))


def test_unknown_or_bad_config_keys_fail_fast_naming_them() -> None:
    args = _voice_args("serve_config.yaml")
    with pytest.raises(ValidationError, match="max_text_length"):
        VoiceAppConfig.model_validate(
            {"engine": {**args["engine"], "max_text_length": 9}}
        )
    with pytest.raises(ValidationError, match="max_batch_size"):
        VoiceAppConfig.model_validate(
            {"engine": {**args["engine"], "batching": {"max_batch_size": 0}}}
        )
    with pytest.raises(ValidationError, match="min_speaking_rate"):
        VoiceEngineConfig(model="m", min_speaking_rate=3.0, max_speaking_rate=2.0)


def test_builder_anchors_the_demo_path_to_the_project() -> None:
    from deployments.voice import resolve_config

    config = resolve_config(_voice_args("serve_config.yaml"))
    assert config.engine.model == str(ROOT / "models" / "demo" / "voice") or (
        not (ROOT / "models" / "demo" / "voice").exists()
    )
