"""Engine-level text request/response types and their validation.

Pure Python (no vLLM, no protos) so converters and tests use them cheaply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from deployments.engines.checks import check_range
from deployments.errors import InvalidArgument

__all__ = ["ChatTurn", "TextDelta", "TextLimits", "TextRequest", "validate"]

FinishReason = Literal["stop", "length", "cancelled"]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTurn:
    role: str
    content: str


@dataclass(frozen=True)
class TextRequest:
    """One generation request, as the engine sees it. None means "default"."""

    prompt: str = ""
    messages: tuple[ChatTurn, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    json_schema: str = ""
    regex: str = ""
    choices: tuple[str, ...] = ()
    request_id: str = ""
    adapter: str = ""  # a LoRA adapter's name; empty: the base model


@dataclass(frozen=True)
class TextLimits:
    """What the served model accepts; reported by ListModels."""

    max_model_len: int
    default_max_tokens: int
    max_stop_strings: int = 8
    max_choices: int = 64
    max_schema_chars: int = 16384


@dataclass
class TextDelta:
    """New text since the previous delta; the last one has `finish_reason`."""

    text: str
    # Running totals for the request, not per delta.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason | None = None
    # On the last delta, when vLLM reports it: seconds queued before the
    # request's first scheduled step.
    queue_seconds: float | None = None


def validate(request: TextRequest, limits: TextLimits) -> None:
    """Reject anything the engine would choke on, naming the field and range.

    Limits that depend on the tokenized prompt (context window) are checked
    by the engine after rendering the prompt.
    """
    if bool(request.prompt) == bool(request.messages):
        raise InvalidArgument(
            field="prompt",
            allowed="a non-empty prompt or non-empty messages, not both",
            reason="empty" if not request.prompt else "both given",
        )
    for i, turn in enumerate(request.messages):
        if turn.role not in ROLES:
            raise InvalidArgument(
                field=f"messages[{i}].role", value=turn.role, allowed=", ".join(ROLES)
            )
    if request.max_tokens is not None and request.max_tokens < 1:
        raise InvalidArgument(
            field="max_tokens",
            value=request.max_tokens,
            allowed=f"1..{limits.max_model_len - 1} (context window minus prompt)",
        )
    check_range("temperature", request.temperature, 0.0, 2.0)
    check_range("top_p", request.top_p, 0.0, 1.0, lo_open=True)
    check_range("presence_penalty", request.presence_penalty, -2.0, 2.0)
    check_range("frequency_penalty", request.frequency_penalty, -2.0, 2.0)
    if request.top_k is not None and request.top_k < -1:
        raise InvalidArgument(
            field="top_k", value=request.top_k, allowed="-1 or 0 (off), or >= 1"
        )
    if len(request.stop) > limits.max_stop_strings or any(not s for s in request.stop):
        raise InvalidArgument(
            field="stop",
            value=list(request.stop),
            allowed=f"at most {limits.max_stop_strings} non-empty strings",
        )
    _validate_constraint(request, limits)


def _validate_constraint(request: TextRequest, limits: TextLimits) -> None:
    given = [
        name
        for name, value in (
            ("json_schema", request.json_schema),
            ("regex", request.regex),
            ("choices", request.choices),
        )
        if value
    ]
    if len(given) > 1:
        raise InvalidArgument(
            field=given[1], allowed="at most one of json_schema, regex, choices"
        )
    if request.json_schema:
        _validate_json_schema(request.json_schema, limits)
    if request.regex:
        try:
            re.compile(request.regex)
        except re.error as exc:
            raise InvalidArgument(
                field="regex", allowed="a valid regular expression", reason=str(exc)
            ) from None
    if request.choices and (
        len(request.choices) > limits.max_choices or not all(request.choices)
    ):
        raise InvalidArgument(
            field="choices",
            allowed=f"1..{limits.max_choices} non-empty strings",
            value=len(request.choices),
        )


def _validate_json_schema(text: str, limits: TextLimits) -> None:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if len(text) > limits.max_schema_chars:
        raise InvalidArgument(
            field="json_schema",
            value=f"{len(text)} characters",
            allowed=f"at most {limits.max_schema_chars} characters",
        )
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            field="json_schema", allowed="a JSON Schema as JSON text", reason=str(exc)
        ) from None
    if not isinstance(schema, dict):
        raise InvalidArgument(
            field="json_schema",
            allowed="a JSON object (a JSON Schema)",
            reason="not an object",
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidArgument(
            field="json_schema", allowed="a valid JSON Schema", reason=exc.message
        ) from None
