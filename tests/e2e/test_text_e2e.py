"""End to end: `serve run serve_config.yaml`, called through the Python client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import jsonschema
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError, routed_channel
from maestro.models_client import default_models
from maestro.v1 import (
    models_pb2,
    text_pb2,
    text_pb2_grpc,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 24},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 8},
            "minItems": 1,
            "maxItems": 3,
        },
    },
    "required": ["title", "count", "tags"],
    "additionalProperties": False,
}


# 1500 digits, one token each in the demo tokenizer: a generation that is
# certain to still be running seconds later (a random model may stop anytime).
LONG = {"regex": "[0-9]{1500}", "max_tokens": 1800}


def _unfinished(client: MaestroClient) -> int:
    (model,) = default_models(client.list_models(["text"]))
    return int(model.stats["unfinished_requests"])


def _wait_idle(client: MaestroClient, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while (left := _unfinished(client)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_health_models_and_reflection(server: str, client: MaestroClient) -> None:
    assert client.health("text") == health_pb2.HealthCheckResponse.SERVING
    assert client.health("text", "maestro.v1.TextService") == (
        health_pb2.HealthCheckResponse.SERVING
    )
    assert client.health("image") == health_pb2.HealthCheckResponse.SERVING
    (model,) = default_models(client.list_models(["text"]))
    assert model.family == models_pb2.FAMILY_TEXT and model.ready
    assert model.id == "maestro-demo-llm" and model.engine.startswith("vllm")
    assert model.limits["max_model_len"] == "2048"
    with grpc.insecure_channel(server) as channel:
        reflection = ProtoReflectionDescriptorDatabase(routed_channel(channel, "text"))
        services = set(reflection.get_services())
    assert {
        "maestro.v1.TextService",
        "maestro.v1.ImageService",
        "maestro.v1.VoiceService",
        "maestro.v1.StudioService",
        "maestro.v1.ModelService",
        "grpc.health.v1.Health",
    } <= services


def test_unary_and_stream_agree(client: MaestroClient) -> None:
    params = {"max_tokens": 24, "temperature": 0.0}
    whole = client.generate_text("the quick fox", **params)
    assert whole.finish_reason in (
        text_pb2.FINISH_REASON_STOP,
        text_pb2.FINISH_REASON_LENGTH,
    )
    assert whole.usage.completion_tokens > 0 and whole.request_id
    chunks = list(client.stream_text("the quick fox", **params))
    assert "".join(c.text for c in chunks) == whole.text
    assert chunks[-1].finish_reason == whole.finish_reason
    assert chunks[-1].usage == whole.usage
    assert all(not c.finish_reason for c in chunks[:-1])


def test_chat_messages_and_seeded_sampling(client: MaestroClient) -> None:
    messages = [{"role": "system", "content": "be brief"}, ("user", "hello")]
    chat = client.generate_text(messages=messages, max_tokens=8)
    assert chat.usage.prompt_tokens > 8
    seeded = {"max_tokens": 32, "temperature": 1.0, "seed": 11}
    first = client.generate_text("a pilot", **seeded)
    assert client.generate_text("a pilot", **seeded).text == first.text
    streamed = "".join(c.text for c in client.stream_text("a pilot", **seeded))
    assert streamed == first.text


def test_structured_output_parses(client: MaestroClient) -> None:
    reply = client.generate_text(
        "json:", json_schema=json.dumps(SCHEMA), max_tokens=300, seed=3
    )
    jsonschema.validate(json.loads(reply.text), SCHEMA)
    choice = client.generate_text("pick:", choices=["red", "green"], max_tokens=4)
    assert choice.text in ("red", "green")


async def test_sixteen_concurrent_streams_interleave(server: str) -> None:
    arrivals: list[int] = []

    async def one(client: AsyncMaestroClient, i: int) -> str:
        parts = []
        async for chunk in client.stream_text(
            f"stream {i}", max_tokens=48, temperature=0.0, stop=["###"]
        ):
            arrivals.append(i)
            parts.append(chunk.text)
        return "".join(parts)

    async with AsyncMaestroClient(server, timeout=120) as client:
        texts = await asyncio.gather(*(one(client, i) for i in range(16)))
    assert len(texts) == 16 and all(texts)
    # interleaving: the stream that finished first had company while it ran
    # (served one after another it would have none; how many joined it
    # depends on how busy the two cores are: 8 and more were seen)
    first_done = min(range(16), key=lambda i: len(arrivals) - arrivals[::-1].index(i))
    last_of_first = len(arrivals) - 1 - arrivals[::-1].index(first_done)
    assert len(set(arrivals[: last_of_first + 1])) > 4


def test_disconnect_aborts_the_request_in_vllm(client: MaestroClient) -> None:
    stream = client.stream_text("a very long story", **LONG)
    next(stream)
    assert _unfinished(client) == 1
    stream.close()  # cancels the RPC
    assert _wait_idle(client) == 0


def test_deadline_aborts_the_request_in_vllm(client: MaestroClient) -> None:
    with pytest.raises(MaestroRpcError) as info:
        for _ in client.stream_text("another long story", timeout=1.0, **LONG):
            pass
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _wait_idle(client) == 0


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"prompt": ""}, grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        (
            {"prompt": "x", "max_tokens": 0},
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_tokens",
        ),
        (
            {"prompt": "x", "max_tokens": 4096},
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_tokens",
        ),
        (
            {"prompt": "x", "temperature": -1},
            grpc.StatusCode.INVALID_ARGUMENT,
            "temperature",
        ),
        ({"prompt": "x", "top_p": 0}, grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
        ({"prompt": "x", "top_p": 1.5}, grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
        (
            {"prompt": "x", "json_schema": "{oops"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "json_schema",
        ),
        (
            {"prompt": "x", "json_schema": '{"type": 5}'},
            grpc.StatusCode.INVALID_ARGUMENT,
            "json_schema",
        ),
        ({"prompt": "x", "regex": "(["}, grpc.StatusCode.INVALID_ARGUMENT, "regex"),
        ({"prompt": "x", "model": "gpt-17"}, grpc.StatusCode.NOT_FOUND, "gpt-17"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_bad_input_gets_a_clear_status_and_the_replica_stays_well(
    client: MaestroClient,
    kwargs: dict,
    code: grpc.StatusCode,
    field: str,
    streaming: bool,
) -> None:
    kwargs = dict(kwargs)  # shared between the streaming parametrizations
    prompt = kwargs.pop("prompt")
    with pytest.raises(MaestroRpcError) as info:
        if streaming:
            list(client.stream_text(prompt, **kwargs))
        else:
            client.generate_text(prompt, **kwargs)
    assert info.value.code == code
    assert field in info.value.details and "Traceback" not in info.value.details
    assert client.generate_text("still fine", max_tokens=2).usage.completion_tokens


def test_call_without_routing_key_gets_rays_not_found(server: str) -> None:
    # Every family has landed (studio last), so none answers UNIMPLEMENTED.
    with grpc.insecure_channel(server) as channel:
        with pytest.raises(grpc.RpcError) as info:  # no routing key: Ray's answer
            text_pb2_grpc.TextServiceStub(channel).GenerateText(
                text_pb2.GenerateTextRequest(prompt="x")
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_streams_text_and_lists_models(server: str) -> None:
    cli = [str(Path(sys.executable).parent / "maestro"), "--target", server]
    out = subprocess.run(
        [*cli, "text", "the cat", "--max-tokens", "8", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "prompt +" in out.stderr and out.stdout.strip()
    models = subprocess.run(
        [*cli, "models"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "maestro-demo-llm" in models.stdout and "ready" in models.stdout
    bad = subprocess.run(
        [*cli, "text", "x", "--top-p", "2"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "INVALID_ARGUMENT: top_p" in bad.stderr


QWEN = "maestro-demo-qwen2"  # serve_config.yaml's second LLM


def test_switching_to_the_second_llm_and_back(client: MaestroClient) -> None:
    # max_loaded_models 1: the Qwen2 request waits while the default Llama
    # (idle) is unloaded and Qwen2 loads; its stream says so, then streams.
    messages = list(
        client.stream_text("Once upon a time", model=QWEN, max_tokens=8, timeout=240)
    )
    loads = [m for m in messages if m.HasField("model_load")]
    assert loads and {m.model_load.model for m in loads} == {QWEN}
    tokens = messages[len(loads) :]
    assert not any(m.HasField("model_load") for m in tokens)
    assert tokens[-1].finish_reason and tokens[-1].model == QWEN
    assert tokens[-1].usage.completion_tokens == 8
    rows = {m.id: m for m in client.list_models(["text"])}
    assert rows[QWEN].stats["state"] == "loaded"
    assert rows["maestro-demo-llm"].stats["state"] == "available"
    assert int(rows[QWEN].stats["memory_bytes"]) > 2**30  # weights + 1 GiB KV
    _adapter_loaded_at_run_time_is_used_by_the_next_request(client)
    # Back to the default: a unary call waits for the switch the same way.
    reply = client.generate_text("hello", max_tokens=4, timeout=240)
    assert reply.model == "maestro-demo-llm" and reply.usage.completion_tokens == 4
    rows = {m.id: m for m in client.list_models(["text"])}
    assert rows[QWEN].stats["state"] == "available"


def _adapter_loaded_at_run_time_is_used_by_the_next_request(
    client: MaestroClient,
) -> None:
    greedy = {"model": QWEN, "max_tokens": 12, "temperature": 0.0}
    base = client.generate_text("the quick fox", **greedy)
    with pytest.raises(MaestroRpcError) as unknown:
        client.generate_text("the quick fox", adapter="demo-lora", **greedy)
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(MaestroRpcError) as outside:  # not under adapter_dirs
        client.load_adapter(QWEN, "x", "models/demo/text")
    assert outside.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "text-qwen2/loras" in outside.value.details
    reply = client.load_adapter(
        QWEN, "demo-lora", "models/demo/text-qwen2/loras/demo-lora"
    )
    assert 0 < reply.load_seconds and reply.model.limits["adapters"] == "demo-lora"
    tuned = client.generate_text("the quick fox", adapter="demo-lora", **greedy)
    assert tuned.text != base.text  # the adapter's weights changed the output
    again = client.generate_text("the quick fox", adapter="demo-lora", **greedy)
    assert again.text == tuned.text
    streamed = client.stream_text("the quick fox", adapter="demo-lora", **greedy)
    assert "".join(m.text for m in streamed) == tuned.text
    info = client.unload_adapter(QWEN, "demo-lora")
    assert info.limits["adapters"] == ""
    with pytest.raises(MaestroRpcError) as gone:
        client.generate_text("the quick fox", adapter="demo-lora", **greedy)
    assert gone.value.code == grpc.StatusCode.NOT_FOUND
