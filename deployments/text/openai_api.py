"""OpenAI's chat and text completions over HTTP, run by the text RPCs.

`POST /v1/chat/completions` and `POST /v1/completions` become a
`GenerateTextRequest` (or `StreamTextRequest` with `stream: true`) and run
through `TextDeployment.GenerateText` / `StreamText` themselves; replies go
back as OpenAI's JSON or as server-sent chunks ending in `data: [DONE]`.
Limits (max_tokens, temperature, ...) are the text family's own, so a bad
value gets the same message over both transports. Maestro's own fields ride
as extra body keys: `top_k`, `regex`, `choices`, `adapter`, `request_id`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.errors import InvalidArgument
from deployments.openai_api import sse
from deployments.openai_api.calls import HttpContext, converted, run_stream, run_unary
from deployments.openai_api.fields import Body, reject_unsupported
from maestro.v1 import text_pb2

__all__ = ["chat_completions", "completions", "text_request"]

# OpenAI's default for /v1/completions (chat has none: up to the context).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
_UNSUPPORTED = {
    "tools": "no tools (function calling is not served)",
    "tool_choice": "none",
    "functions": "no functions",
    "function_call": "none",
    "logprobs": "false (log probabilities are not returned)",
    "top_logprobs": "none",
    "logit_bias": "none",
    "echo": "false",
    "suffix": "none",
    "best_of": "1",
    "audio": "none (use POST /v1/audio/speech)",
    "prediction": "none",
}
_FINISH = {
    text_pb2.FINISH_REASON_UNSPECIFIED: None,
    text_pb2.FINISH_REASON_STOP: "stop",
    text_pb2.FINISH_REASON_LENGTH: "length",
    text_pb2.FINISH_REASON_CANCELLED: "stop",
}


def _content(turn: Body, index: int) -> str:
    """A message's content: a string, or a list of text parts joined."""
    value = turn.data.get("content")
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        texts = []
        for part in value:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise InvalidArgument(
                    field=f"messages[{index}].content",
                    value=part,
                    allowed='a string or parts {"type": "text", "text": ...}',
                )
            texts.append(Body(part).string("text"))
        return "".join(texts)
    raise InvalidArgument(
        field=f"messages[{index}].content", value=value, allowed="a string or parts"
    )


def _messages(body: Body) -> list[text_pb2.ChatMessage]:
    turns = body.objects("messages")
    if not turns:
        raise InvalidArgument(field="messages", allowed="at least one message")
    return [
        text_pb2.ChatMessage(
            role=Body(turn).string("role"), content=_content(Body(turn), i)
        )
        for i, turn in enumerate(turns)
    ]


def _json_schema(body: Body) -> str:
    """`response_format` as the RPC's json_schema (json_object: any object)."""
    fmt = body.object("response_format")
    kind = fmt.string("type", "text")
    if kind == "text":
        return ""
    if kind == "json_object":
        return '{"type": "object"}'
    if kind == "json_schema":
        schema = fmt.object("json_schema").object("schema")
        if not schema.data:
            raise InvalidArgument(
                field="response_format.json_schema.schema", allowed="a JSON schema"
            )
        return json.dumps(schema.data)
    raise InvalidArgument(
        field="response_format.type",
        value=kind,
        allowed="text, json_object, json_schema",
    )


def text_request(
    body: Body, message_type: type[Any], *, chat: bool
) -> text_pb2.GenerateTextRequest | text_pb2.StreamTextRequest:
    """An OpenAI (chat) completions body as the text RPC's request."""
    reject_unsupported(body, _UNSUPPORTED)
    body.object("stream_options").boolean("include_usage")  # the handler reads it
    n = body.integer("n")
    if n not in (None, 1):
        raise InvalidArgument(field="n", value=n, allowed="1")
    max_tokens = body.integer("max_completion_tokens", bits=32)
    if max_tokens is None:
        max_tokens = body.integer("max_tokens", bits=32)
    if max_tokens is None and not chat:
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
    fields: dict[str, Any] = {
        "model": body.string("model"),
        "max_tokens": max_tokens,
        "temperature": body.number("temperature"),
        "top_p": body.number("top_p"),
        "top_k": body.integer("top_k", bits=32),
        "seed": body.integer("seed"),
        "stop": body.strings("stop"),
        "presence_penalty": body.number("presence_penalty"),
        "frequency_penalty": body.number("frequency_penalty"),
        "json_schema": _json_schema(body),
        "regex": body.string("regex"),
        "choices": body.strings("choices"),
        "adapter": body.string("adapter"),
        "request_id": body.string("request_id"),
    }
    if chat:
        fields["messages"] = _messages(body)
    else:
        prompts = body.strings("prompt")
        if len(prompts) != 1:
            raise InvalidArgument(
                field="prompt", value=prompts, allowed="one string (n=1)"
            )
        fields["prompt"] = prompts[0]
    return message_type(**{k: v for k, v in fields.items() if v is not None})


def _usage(usage: text_pb2.Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


class _Shape:
    """What differs between chat and text completions on the wire."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.prefix = "chatcmpl-" if chat else "cmpl-"
        self.created = int(time.time())

    def head(self, reply: Any, kind: str) -> dict[str, Any]:
        return {
            "id": self.prefix + reply.request_id,
            "object": kind,
            "created": self.created,
            "model": reply.model,
        }

    def choice(self, text: str | None, finish: str | None, *, whole: bool) -> dict:
        choice: dict[str, Any] = {"index": 0}
        if self.chat and whole:
            choice["message"] = {"role": "assistant", "content": text}
        elif self.chat:
            choice["delta"] = {} if text is None else {"content": text}
        else:
            choice["text"] = text or ""
        choice["logprobs"] = None
        choice["finish_reason"] = finish
        return choice

    def whole(self, reply: text_pb2.GenerateTextResponse) -> Response:
        kind = "chat.completion" if self.chat else "text_completion"
        finish = _FINISH[reply.finish_reason]
        return JSONResponse(
            {
                **self.head(reply, kind),
                "choices": [self.choice(reply.text, finish, whole=True)],
                "usage": _usage(reply.usage),
            }
        )

    async def chunks(
        self, replies: AsyncIterator[text_pb2.StreamTextResponse], usage: bool
    ) -> AsyncIterator[bytes]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        extra = {"usage": None} if usage else {}
        started = False
        async for reply in replies:
            if reply.HasField("model_load"):
                load = reply.model_load
                yield sse.comment(
                    f"waiting for model {load.model} ({load.state}, "
                    f"{load.waited_seconds:.0f} s)"
                )
                continue
            head = self.head(reply, kind)
            if self.chat and not started:  # OpenAI's first chunk: the role
                role = self.choice(None, None, whole=False)
                role["delta"] = {"role": "assistant", "content": ""}
                yield sse.event({**head, "choices": [role], **extra})
            started = True
            finish = _FINISH[reply.finish_reason]
            if reply.text:  # (an empty one: bytes of a character still to come)
                choice = self.choice(reply.text, None, whole=False)
                yield sse.event({**head, "choices": [choice], **extra})
            if finish is not None:
                choice = self.choice(None, finish, whole=False)
                yield sse.event({**head, "choices": [choice], **extra})
                if usage:
                    yield sse.event(
                        {**head, "choices": [], "usage": _usage(reply.usage)}
                    )
        yield sse.DONE


async def _complete(ingress: Any, request: Request, *, chat: bool) -> Response:
    def convert(body: Body) -> Any:
        stream = body.boolean("stream")
        kind = text_pb2.StreamTextRequest if stream else text_pb2.GenerateTextRequest
        return text_request(body, kind, chat=chat)

    body, message = await converted(request, convert)
    stream = isinstance(message, text_pb2.StreamTextRequest)
    usage = body.object("stream_options").boolean("include_usage")  # checked
    context = HttpContext(request.headers.items())
    shape = _Shape(chat)
    if not stream:
        return await run_unary(ingress.GenerateText, message, context, shape.whole)
    return await run_stream(
        ingress.StreamText,
        message,
        context,
        lambda replies: shape.chunks(replies, usage),
        media_type=sse.MEDIA_TYPE,
        on_error=sse.error_event,
    )


async def chat_completions(ingress: Any, request: Request) -> Response:
    """POST /v1/chat/completions."""
    return await _complete(ingress, request, chat=True)


async def completions(ingress: Any, request: Request) -> Response:
    """POST /v1/completions."""
    return await _complete(ingress, request, chat=False)
