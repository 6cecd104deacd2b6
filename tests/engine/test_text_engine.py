"""The text engine alone (no Ray): real vLLM on the demo checkpoint, on the CPU."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest

from deployments.engines.text.config import TextEngineConfig
from deployments.engines.text.engine import TextEngine
from deployments.engines.text.types import ChatTurn, TextRequest
from deployments.errors import InvalidArgument, NotFound

pytestmark = pytest.mark.slow

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 20},
        "scenes": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {"narration": {"type": "string", "maxLength": 30}},
                "required": ["narration"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "scenes"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
async def engine(demo_models: Path) -> AsyncIterator[TextEngine]:
    engine = TextEngine(
        TextEngineConfig(
            model=str(demo_models / "text"),
            dtype="float32",
            max_model_len=512,
            kv_cache_space_gib=1,
            default_max_tokens=32,
        )
    )
    await engine.start()
    yield engine
    await engine.shutdown()


async def test_generate_reports_text_usage_and_finish(engine: TextEngine) -> None:
    result = await engine.generate(TextRequest(prompt="the cat sees", max_tokens=12))
    assert result.finish_reason in ("stop", "length")
    assert result.prompt_tokens > 0
    assert 0 < result.completion_tokens <= 12
    if result.finish_reason == "length":
        assert result.completion_tokens == 12


async def test_stream_concatenates_to_generate(engine: TextEngine) -> None:
    request = TextRequest(prompt="a robot builds", max_tokens=16, temperature=0)
    deltas = [d async for d in engine.stream(request)]
    whole = await engine.generate(request)
    assert "".join(d.text for d in deltas) == whole.text
    assert [d.finish_reason is not None for d in deltas][-1]
    assert all(d.finish_reason is None for d in deltas[:-1])


async def test_chat_messages_use_the_chat_template(engine: TextEngine) -> None:
    chat = TextRequest(
        messages=(ChatTurn("system", "be brief"), ChatTurn("user", "hello")),
        max_tokens=4,
    )
    plain = TextRequest(prompt="hello", max_tokens=4)
    chat_result = await engine.generate(chat)
    plain_result = await engine.generate(plain)
    # the template adds role headers and end-of-turn tokens around the content
    assert chat_result.prompt_tokens > plain_result.prompt_tokens + 4


async def test_same_seed_same_text_even_under_concurrency(engine: TextEngine) -> None:
    request = TextRequest(prompt="the river", max_tokens=24, temperature=1.0, seed=7)
    other = TextRequest(prompt="my friend", max_tokens=24, temperature=1.0)
    first = await engine.generate(request)
    results = await asyncio.gather(
        engine.generate(request), *(engine.generate(other) for _ in range(4))
    )
    assert results[0].text == first.text
    different = await engine.generate(
        TextRequest(prompt="the river", max_tokens=24, temperature=1.0, seed=8)
    )
    assert different.text != first.text


async def test_json_schema_output_parses_and_validates(engine: TextEngine) -> None:
    result = await engine.generate(
        TextRequest(
            prompt="plan:", json_schema=json.dumps(SCHEMA), max_tokens=200, seed=1
        )
    )
    assert result.finish_reason == "stop"
    jsonschema.validate(json.loads(result.text), SCHEMA)


async def test_regex_and_choices_constrain_output(engine: TextEngine) -> None:
    regex = await engine.generate(
        TextRequest(prompt="code:", regex="[A-Z]{3}-[0-9]{2}", max_tokens=20)
    )
    assert re.fullmatch("[A-Z]{3}-[0-9]{2}", regex.text)
    choice = await engine.generate(
        TextRequest(prompt="answer:", choices=("yes", "no", "maybe"), max_tokens=8)
    )
    assert choice.text in ("yes", "no", "maybe")


async def test_concurrent_requests_share_the_engine(engine: TextEngine) -> None:
    """Continuous batching: 16 streams progress together, none waits for another."""
    order: list[int] = []

    async def run(i: int) -> None:
        async for _ in engine.stream(
            TextRequest(prompt=f"stream {i}", max_tokens=16, temperature=0)
        ):
            order.append(i)

    await asyncio.gather(*(run(i) for i in range(16)))
    first_finish = max(order.index(i) for i in range(16))
    # every stream produced output before the first stream's last delta
    last_of_first = len(order) - 1 - order[::-1].index(order[0])
    assert first_finish < last_of_first or len(set(order[:16])) > 1


async def test_cancelled_stream_leaves_nothing_running(engine: TextEngine) -> None:
    # 450 digits (one token each): certainly still running when cancelled
    request = TextRequest(prompt="a long story", regex="[0-9]{450}", max_tokens=480)

    async def consume() -> None:
        async for _ in engine.stream(request):
            pass

    task = asyncio.create_task(consume())
    while engine.num_unfinished_requests() == 0:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if engine.num_unfinished_requests() == 0:
            break
        await asyncio.sleep(0.02)
    assert engine.num_unfinished_requests() == 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (TextRequest(prompt="x", max_tokens=600), "max_tokens"),
        (TextRequest(prompt="the cat " * 400, max_tokens=4), "prompt"),
        (TextRequest(prompt=""), "prompt"),
        (TextRequest(prompt="x", json_schema='{"type": "objekt"}'), "json_schema"),
        (TextRequest(prompt="x", regex="(["), "regex"),
        (TextRequest(prompt="x", top_p=0), "top_p"),
    ],
)
async def test_bad_input_is_refused_and_engine_stays_healthy(
    engine: TextEngine, request_: TextRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await engine.generate(request_)
    assert info.value.field == field
    ok = await engine.generate(TextRequest(prompt="still fine", max_tokens=3))
    assert ok.completion_tokens > 0


async def test_unknown_model_is_not_found(engine: TextEngine) -> None:
    with pytest.raises(NotFound, match="available: text"):
        engine.check_model("gpt-17")
    engine.check_model("")
    engine.check_model("text")


async def test_sleep_mode_is_refused_on_cpu_saying_why(demo_models: Path) -> None:
    from tests.helpers.devices import cuda_available

    if cuda_available():
        pytest.skip("on a GPU vLLM sleeps: nothing to refuse")
    engine = TextEngine(
        TextEngineConfig(
            model=str(demo_models / "text"), dtype="float32", sleep_mode=True
        )
    )
    with pytest.raises(RuntimeError, match="sleep_mode needs a GPU"):
        await engine.start()
    assert "sleep_mode needs a GPU" in engine.status_message
    assert not engine.ready
