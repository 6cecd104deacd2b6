"""Server-sent events as OpenAI streams them: `data: <json>` frames, then
`data: [DONE]`; a comment frame (ignored by clients) while a model loads."""

from __future__ import annotations

import json
from typing import Any

from deployments.openai_api.calls import HttpContext, error_json
from deployments.status import http_status

__all__ = ["DONE", "MEDIA_TYPE", "comment", "error_event", "event"]

MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def comment(text: str) -> bytes:
    return b": " + text.replace("\n", " ").encode() + b"\n\n"


def error_event(context: HttpContext) -> bytes:
    """A stream that failed after it began: OpenAI's error object, then DONE
    (what vLLM's server sends)."""
    _, kind = http_status(context.code)
    return event(error_json(context.details, kind, context.code.name.lower())) + DONE
