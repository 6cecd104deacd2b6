"""Proto <-> engine conversions for the text family; engines never see protos."""

from __future__ import annotations

from deployments.engines.text.types import ChatTurn, TextDelta, TextRequest
from maestro.v1 import text_pb2

__all__ = [
    "condense_stream",
    "to_engine_request",
    "to_generate_response",
    "to_stream_response",
]

_FINISH = {
    None: text_pb2.FINISH_REASON_UNSPECIFIED,
    "stop": text_pb2.FINISH_REASON_STOP,
    "length": text_pb2.FINISH_REASON_LENGTH,
    "cancelled": text_pb2.FINISH_REASON_CANCELLED,
}


def _opt(msg: text_pb2.GenerateTextRequest | text_pb2.StreamTextRequest, name: str):
    return getattr(msg, name) if msg.HasField(name) else None


def to_engine_request(
    msg: text_pb2.GenerateTextRequest | text_pb2.StreamTextRequest, request_id: str
) -> TextRequest:
    """Both request messages share field names and numbers, so one converter."""
    return TextRequest(
        prompt=msg.prompt,
        messages=tuple(ChatTurn(m.role, m.content) for m in msg.messages),
        max_tokens=_opt(msg, "max_tokens"),
        temperature=_opt(msg, "temperature"),
        top_p=_opt(msg, "top_p"),
        top_k=_opt(msg, "top_k"),
        seed=_opt(msg, "seed"),
        stop=tuple(msg.stop),
        presence_penalty=_opt(msg, "presence_penalty"),
        frequency_penalty=_opt(msg, "frequency_penalty"),
        json_schema=msg.json_schema,
        regex=msg.regex,
        choices=tuple(msg.choices),
        request_id=request_id,
        adapter=msg.adapter,
    )


def _usage(delta: TextDelta) -> text_pb2.Usage:
    return text_pb2.Usage(
        prompt_tokens=delta.prompt_tokens, completion_tokens=delta.completion_tokens
    )


def to_generate_response(
    delta: TextDelta, *, model: str, request_id: str
) -> text_pb2.GenerateTextResponse:
    return text_pb2.GenerateTextResponse(
        text=delta.text,
        finish_reason=_FINISH[delta.finish_reason],
        usage=_usage(delta),
        model=model,
        request_id=request_id,
    )


def to_stream_response(
    delta: TextDelta, *, model: str, request_id: str
) -> text_pb2.StreamTextResponse:
    last = delta.finish_reason is not None
    return text_pb2.StreamTextResponse(
        text=delta.text,
        finish_reason=_FINISH[delta.finish_reason],
        usage=_usage(delta) if last else None,
        model=model,
        request_id=request_id,
    )


def condense_stream(
    messages: list[text_pb2.StreamTextResponse],
) -> list[text_pb2.StreamTextResponse] | None:
    """A finished stream as the cache replays it: its whole text in one
    message, then the last one (finish reason and usage); None unless it
    finished (stop or length)."""
    if not messages or messages[-1].finish_reason not in (
        text_pb2.FINISH_REASON_STOP,
        text_pb2.FINISH_REASON_LENGTH,
    ):
        return None
    last = messages[-1]
    text = "".join(m.text for m in messages)
    final = text_pb2.StreamTextResponse(
        finish_reason=last.finish_reason, usage=last.usage, model=last.model
    )
    if not text:
        return [final]
    return [text_pb2.StreamTextResponse(text=text, model=last.model), final]
