"""Request validation of the text family: every bad input names its field."""

from __future__ import annotations

import json

import grpc
import pytest

from deployments.engines.text.types import ChatTurn, TextLimits, TextRequest, validate
from deployments.errors import InvalidArgument
from deployments.status import to_status

LIMITS = TextLimits(max_model_len=2048, default_max_tokens=256)


@pytest.mark.parametrize(
    ("request_", "field", "allowed"),
    [
        (TextRequest(), "prompt", "non-empty prompt"),
        (
            TextRequest(prompt="a", messages=(ChatTurn("user", "b"),)),
            "prompt",
            "not both",
        ),
        (TextRequest(messages=(ChatTurn("robot", "b"),)), "messages[0].role", "user"),
        (TextRequest(prompt="a", max_tokens=0), "max_tokens", "1..2047"),
        (TextRequest(prompt="a", max_tokens=-5), "max_tokens", "1..2047"),
        (TextRequest(prompt="a", temperature=-0.1), "temperature", "[0.0, 2.0]"),
        (
            TextRequest(prompt="a", temperature=float("nan")),
            "temperature",
            "[0.0, 2.0]",
        ),
        (TextRequest(prompt="a", top_p=0.0), "top_p", "(0.0, 1.0]"),
        (TextRequest(prompt="a", top_p=1.5), "top_p", "(0.0, 1.0]"),
        (TextRequest(prompt="a", top_k=-2), "top_k", ">= 1"),
        (
            TextRequest(prompt="a", presence_penalty=3),
            "presence_penalty",
            "[-2.0, 2.0]",
        ),
        (TextRequest(prompt="a", frequency_penalty=-3), "frequency_penalty", "[-2.0"),
        (TextRequest(prompt="a", stop=("",)), "stop", "non-empty strings"),
        (TextRequest(prompt="a", stop=tuple("abcdefghi")), "stop", "at most 8"),
        (TextRequest(prompt="a", json_schema="{not json"), "json_schema", "JSON"),
        (TextRequest(prompt="a", json_schema="[1, 2]"), "json_schema", "JSON object"),
        (
            TextRequest(prompt="a", json_schema='{"type": "objekt"}'),
            "json_schema",
            "valid JSON Schema",
        ),
        (TextRequest(prompt="a", regex="(["), "regex", "valid regular expression"),
        (TextRequest(prompt="a", regex="a+", choices=("x",)), "choices", "at most one"),
        (TextRequest(prompt="a", choices=("x", "")), "choices", "non-empty"),
    ],
)
def test_bad_input_names_field_and_range(
    request_: TextRequest, field: str, allowed: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate(request_, LIMITS)
    assert info.value.field == field
    code, details = to_status(info.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field) and allowed in details


def test_valid_requests_pass() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    for ok in (
        TextRequest(prompt="hi"),
        TextRequest(messages=(ChatTurn("system", "s"), ChatTurn("user", "u"))),
        TextRequest(prompt="hi", max_tokens=1, temperature=0, top_p=1, top_k=-1),
        TextRequest(prompt="hi", json_schema=json.dumps(schema)),
        TextRequest(prompt="hi", regex="[a-z]{3}"),
        TextRequest(prompt="hi", choices=("yes", "no"), stop=("\n",)),
    ):
        validate(ok, LIMITS)
