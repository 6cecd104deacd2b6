"""End to end: OpenAI-compatible HTTP on the session's stack, driven by the
official `openai` Python package and by plain HTTP requests (what `curl`
sends), each answer checked against the same call over gRPC."""

from __future__ import annotations

import base64
import io
import json
import os
import time
import wave
from collections.abc import Iterator

import httpx
import openai
import pytest

from maestro import MaestroClient
from maestro.models_client import default_models
from tests.helpers.serve_run import ServeRun
from tests.helpers.spans import trace_spans

MESSAGES = [{"role": "user", "content": "Tell me about the sea."}]


@pytest.fixture(scope="module")
def base_url(stack: ServeRun) -> str:
    return f"http://127.0.0.1:{stack.http_port}/v1"


@pytest.fixture(scope="module")
def sdk(base_url: str) -> Iterator[openai.OpenAI]:
    key = os.environ["MAESTRO_API_KEY"]
    with openai.OpenAI(
        base_url=base_url, api_key=key, max_retries=0, timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {os.environ['MAESTRO_API_KEY']}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        yield client


def test_chat_is_the_grpc_completion(sdk: openai.OpenAI, client: MaestroClient) -> None:
    reply = sdk.chat.completions.create(
        model="maestro-demo-llm", messages=MESSAGES, max_tokens=12, temperature=0
    )
    grpc_reply = client.generate_text(
        messages=[("user", "Tell me about the sea.")], max_tokens=12, temperature=0
    )
    (choice,) = reply.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == grpc_reply.text
    assert choice.finish_reason == "length"
    assert reply.model == "maestro-demo-llm" and reply.id.startswith("chatcmpl-")
    assert reply.usage.completion_tokens == 12
    assert reply.usage.prompt_tokens == grpc_reply.usage.prompt_tokens


def test_chat_stream_ends_with_usage_and_done(
    sdk: openai.OpenAI, http: httpx.Client
) -> None:
    params = {"model": "", "messages": MESSAGES, "max_tokens": 10, "seed": 7}
    whole = sdk.chat.completions.create(**params)
    chunks = list(
        sdk.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    # On the wire: server-sent events, the last one `data: [DONE]`.
    with http.stream(
        "POST", "/chat/completions", json={**params, "stream": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in response.iter_lines() if line]
    assert frames[-1] == "data: [DONE]"
    assert all(f.startswith("data: {") for f in frames[:-1])


def test_completions_default_to_16_tokens_and_stream(sdk: openai.OpenAI) -> None:
    reply = sdk.completions.create(model="", prompt="Once upon a time", seed=3)
    assert reply.object == "text_completion"
    assert reply.usage.completion_tokens <= 16  # OpenAI's default max_tokens
    streamed = sdk.completions.create(
        model="", prompt="Once upon a time", seed=3, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_json_schema_response_format(sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["n"],
        "additionalProperties": False,
    }
    reply = sdk.chat.completions.create(
        model="",
        messages=MESSAGES,
        max_tokens=200,
        seed=5,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": schema},
        },
    )
    value = json.loads(reply.choices[0].message.content)
    assert list(value) == ["n"] and isinstance(value["n"], int)


def test_models_lists_every_family(sdk: openai.OpenAI, client: MaestroClient) -> None:
    listed = {m.id: m for m in sdk.models.list()}
    for family in ("text", "image", "voice"):
        for model in default_models(client.list_models([family])):
            assert listed[model.id].family == family
    assert "studio" not in listed


def test_image_is_the_grpc_image(sdk: openai.OpenAI, client: MaestroClient) -> None:
    extras = {"seed": 11, "steps": 2}
    reply = sdk.images.generate(
        prompt="a red boat",
        size="64x64",
        n=1,
        response_format="b64_json",
        extra_body=extras,
    )
    (image,) = reply.data
    png = base64.b64decode(image.b64_json)
    grpc_image = client.generate_image(
        "a red boat", width=64, height=64, **extras
    ).images[0]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == grpc_image.data


def _pcm(wav_bytes: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(wav_bytes)) as audio:
        return audio.getframerate(), audio.readframes(audio.getnframes())


def test_speech_whole_streamed_and_sse_are_the_same_audio(
    sdk: openai.OpenAI, http: httpx.Client
) -> None:
    text = "Hello there. The boat is red."
    params = {"model": "maestro-demo-tts", "voice": "ava", "input": text}
    whole = sdk.audio.speech.create(
        **params, response_format="wav", extra_body={"seed": 2}
    ).content
    rate, pcm = _pcm(whole)
    with sdk.audio.speech.with_streaming_response.create(
        **params,
        response_format="wav",
        extra_body={"seed": 2, "stream_format": "audio"},
    ) as response:
        streamed = b"".join(response.iter_bytes())
    # A streaming WAV header (sizes unknown), then the same samples.
    assert streamed[:4] == b"RIFF" and streamed[44:] == pcm
    assert int.from_bytes(streamed[24:28], "little") == rate
    events = []
    with http.stream(
        "POST",
        "/audio/speech",
        json={**params, "response_format": "pcm", "seed": 2, "stream_format": "sse"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    assert events[-1]["type"] == "speech.audio.done"
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2  # one per sentence
    assert b"".join(base64.b64decode(e["audio"]) for e in deltas) == pcm


@pytest.mark.parametrize(
    ("path", "body", "status", "named"),
    [
        (
            "/chat/completions",
            {"messages": MESSAGES, "max_tokens": 10**6},
            400,
            "max_tokens",
        ),
        (
            "/chat/completions",
            {"messages": MESSAGES, "temperature": "hot"},
            400,
            "temperature",
        ),
        ("/chat/completions", {"messages": MESSAGES, "n": 2}, 400, "n"),
        ("/chat/completions", {"messages": MESSAGES, "model": "nope"}, 404, "nope"),
        ("/completions", {"prompt": "x", "tools": [{}]}, 400, "tools"),
        ("/images/generations", {"prompt": "x", "size": "65x64"}, 400, "width"),
        (
            "/images/generations",
            {"prompt": "x", "response_format": "url"},
            400,
            "b64_json",
        ),
        (
            "/audio/speech",
            {"input": "Hi.", "response_format": "mp3"},
            400,
            "wav, pcm, flac",
        ),
        ("/audio/speech", {"input": "Hi.", "voice": "alloy"}, 404, "alloy"),
    ],
)
def test_bad_requests_get_openai_errors(
    http: httpx.Client, path: str, body: dict, status: int, named: str
) -> None:
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert named in error["message"]
    assert error["type"] in ("invalid_request_error", "not_found_error")
    assert "Traceback" not in response.text and "Error:" not in error["message"]
    assert response.headers["x-request-id"]


def test_sdk_raises_its_own_error_classes(base_url: str, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        sdk.chat.completions.create(model="", messages=MESSAGES, max_tokens=0)
    with pytest.raises(openai.NotFoundError, match="nope"):
        sdk.chat.completions.create(model="nope", messages=MESSAGES)
    stranger = openai.OpenAI(base_url=base_url, api_key="mae_unknown", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        stranger.models.list()
    # Not JSON at all, and a path nobody serves.
    raw = httpx.post(f"{base_url}/completions", content=b"{oops")
    assert raw.status_code == 400 and "JSON" in raw.json()["error"]["message"]
    assert httpx.get(f"{base_url}/nothing").status_code == 404


def _unfinished(client: MaestroClient) -> int:
    (model,) = default_models(client.list_models(["text"]))
    return int(model.stats["unfinished_requests"])


def test_a_client_leaving_an_http_stream_aborts_it_in_vllm(
    http: httpx.Client, client: MaestroClient
) -> None:
    body = {
        "prompt": "digits",
        "regex": "[0-9]{1500}",
        "max_tokens": 1800,
        "stream": True,
    }
    with http.stream("POST", "/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert _unfinished(client) == 1
    deadline = time.monotonic() + 15  # a never-hang bound
    while _unfinished(client) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _unfinished(client) == 0


def test_an_http_call_is_served_in_the_engine_replica(
    http: httpx.Client, stack: ServeRun
) -> None:
    """No extra hop: the HTTP call's RPC span sits right under the replica
    span of the deployment that holds vLLM, as a gRPC call's does."""
    response = http.post(
        "/chat/completions", json={"messages": MESSAGES, "max_tokens": 4}
    )
    assert response.status_code == 200, response.text
    trace_id = response.headers["x-trace-id"]
    spans = trace_spans(stack, trace_id, {"text.GenerateText", "text.engine.generate"})
    by_name = {s["name"]: s for s in spans.values()}
    ingress, engine = by_name["text.GenerateText"], by_name["text.engine.generate"]
    assert ingress["attributes"]["rpc.system"] == "http"
    assert engine["parent_span_id"] == ingress["span_id"]
    replica = spans[ingress["parent_span_id"]]
    assert replica["name"] == "replica_handle_request Text __call__"
