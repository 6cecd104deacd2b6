"""The OpenAI HTTP layer's conversions and status mapping, without a stack
(the e2e tier drives the real endpoints with the `openai` package)."""

from __future__ import annotations

import json

import grpc
import pytest

from deployments.errors import ErrorKind, InvalidArgument
from deployments.image.openai_api import image_request
from deployments.openai_api.calls import HttpContext
from deployments.openai_api.fields import Body
from deployments.status import GRPC_CODES, HTTP_STATUS
from deployments.text.openai_api import text_request
from deployments.voice.openai_api import speech_request
from maestro.v1 import image_pb2, text_pb2, voice_pb2

CHAT = [{"role": "user", "content": "hi"}]


def test_every_error_kind_has_an_http_status() -> None:
    assert {GRPC_CODES[kind] for kind in ErrorKind} <= set(HTTP_STATUS)


def test_chat_body_becomes_the_rpc_request() -> None:
    message = text_request(
        Body(
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                ],
                "max_completion_tokens": 7,
                "max_tokens": 99,  # the newer name wins
                "temperature": 0,
                "seed": 4,
                "stop": "END",
                "response_format": {"type": "json_object"},
                "top_k": 3,
            }
        ),
        text_pb2.StreamTextRequest,
        chat=True,
    )
    assert [(m.role, m.content) for m in message.messages] == [
        ("system", "be brief"),
        ("user", "hi"),
    ]
    assert (message.max_tokens, message.temperature, message.seed) == (7, 0.0, 4)
    assert list(message.stop) == ["END"] and message.top_k == 3
    assert json.loads(message.json_schema) == {"type": "object"}
    assert not message.HasField("top_p")  # unset stays unset: the engine's default


def test_completions_default_to_sixteen_tokens() -> None:
    message = text_request(
        Body({"prompt": ["once"]}), text_pb2.GenerateTextRequest, chat=False
    )
    assert (message.prompt, message.max_tokens) == ("once", 16)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": CHAT, "n": 3}, "n"),
        ({"messages": CHAT, "tools": [{"type": "function"}]}, "tools"),
        ({"messages": CHAT, "logprobs": True}, "logprobs"),
        ({"messages": CHAT, "max_tokens": 2**40}, "max_tokens"),
        ({"messages": CHAT, "temperature": True}, "temperature"),
        ({"messages": CHAT, "stop": [1]}, "stop"),
        (
            {"messages": CHAT, "stream_options": {"include_usage": "yes"}},
            "include_usage",
        ),
        ({"messages": []}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "content",
        ),
        ({"messages": CHAT, "response_format": {"type": "yaml"}}, "response_format"),
    ],
)
def test_bad_chat_fields_are_named(body: dict, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        text_request(Body(body), text_pb2.GenerateTextRequest, chat=True)


def test_image_body_with_maestro_extras() -> None:
    message = image_request(
        Body(
            {
                "prompt": "a boat",
                "size": "128x64",
                "n": 2,
                "output_format": "webp",
                "seed": 9,
                "steps": 3,
                "loras": [{"name": "demo-style", "weight": 0.5}, {"name": "x"}],
            }
        )
    )
    assert (message.width, message.height, message.num_images) == (128, 64, 2)
    assert message.format == image_pb2.IMAGE_FORMAT_WEBP
    assert (message.seed, message.steps) == (9, 3)
    assert [(lora.name, lora.weight) for lora in message.loras] == [
        ("demo-style", 0.5),
        ("x", 1.0),
    ]
    auto = image_request(Body({"prompt": "a boat"}))
    assert (auto.width, auto.height, auto.num_images) == (0, 0, 1)  # defaults


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"size": "big"}, "size"),
        ({"response_format": "url"}, "response_format"),
        ({"output_format": "gif"}, "output_format"),
        ({"n": -1}, "n"),
        ({"stream": True}, "stream"),
        ({"loras": [{"weight": 1}]}, "loras"),
    ],
)
def test_bad_image_fields_are_named(body: dict, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        image_request(Body({"prompt": "x", **body}))


def test_speech_body_picks_the_rpc_by_stream_format() -> None:
    whole = speech_request(Body({"input": "Hi.", "response_format": "flac"}))
    assert isinstance(whole, voice_pb2.SynthesizeRequest)
    assert whole.format == voice_pb2.AUDIO_FORMAT_FLAC
    streamed = speech_request(
        Body({"input": "Hi.", "stream_format": "audio", "speed": 1.5, "voice": "ava"})
    )
    assert isinstance(streamed, voice_pb2.StreamSpeechRequest)
    # wav is streamed as raw PCM behind one streaming header the layer writes
    assert streamed.format == voice_pb2.AUDIO_FORMAT_PCM_S16LE
    assert (streamed.speaking_rate, streamed.voice) == (1.5, "ava")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": ""}, "input"),
        ({"input": "Hi.", "response_format": "mp3"}, "response_format"),
        ({"input": "Hi.", "stream_format": "audio", "response_format": "flac"}, "flac"),
        ({"input": "Hi.", "stream_format": "ws"}, "stream_format"),
        ({"input": "Hi.", "instructions": "cheerful"}, "instructions"),
    ],
)
def test_bad_speech_fields_are_named(body: dict, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        speech_request(Body(body))


def test_context_reads_headers_and_answers_retry_after() -> None:
    context = HttpContext(
        [("Authorization", "Bearer k"), ("X-Maestro-Cache", "bypass")]
    )
    assert ("authorization", "Bearer k") in context.invocation_metadata()
    context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
    context.set_details("quota requests_per_minute exceeded")
    context.set_trailing_metadata(
        [
            ("x-request-id", "r1"),
            ("grpc-retry-pushback-ms", "2500"),
            ("x-cache", "miss"),
        ]
    )
    response = context.error_response()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"  # seconds, rounded up
    assert response.headers["x-cache"] == "miss"
    error = json.loads(response.body)["error"]
    assert error["type"] == "rate_limit_error"
    assert error["message"] == "quota requests_per_minute exceeded"
