"""One HTTP request run through a family's own RPC method.

The HTTP layer is a converter: it turns the JSON body into the RPC's request
message and calls the deployment's `unary_rpc` / `stream_rpc` method with an
`HttpContext` standing in for gRPC's. So the API key, scopes, quotas, the
response cache, validation, spans and metrics are the gRPC path's own code;
this module only reads back the status that code set and answers it as HTTP
(`deployments.status.HTTP_STATUS`) in OpenAI's error JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from typing import Any, TypeVar

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from deployments.errors import InvalidArgument
from deployments.ingress import (
    CACHE_STATUS_KEY,
    RETRY_PUSHBACK_KEY,
    TRACE_ID_KEY,
    StreamFailed,
)
from deployments.openai_api.fields import Body
from deployments.status import http_status

__all__ = [
    "MAX_BODY_BYTES",
    "HttpContext",
    "Rejected",
    "converted",
    "error_json",
    "read_body",
    "run_stream",
    "run_unary",
]

T = TypeVar("T")
# A JSON body larger than this is refused before it is parsed (the largest
# legitimate one is a long chat history; images and audio go out, not in).
MAX_BODY_BYTES = 4 * 1024 * 1024
# Trailing metadata a gRPC client reads, sent to an HTTP client as headers.
# Not x-request-id: Ray's HTTP proxy puts the request's id (the client's
# x-request-id, else its own) in the request headers, where the RPC reads it,
# and sets the same response header itself.
_ECHOED = (TRACE_ID_KEY, CACHE_STATUS_KEY)


class HttpContext:
    """The part of Ray's gRPC context the ingress layer uses, over HTTP.

    Request headers are the call's metadata (`authorization`, `x-request-id`,
    `x-maestro-cache`, `x-maestro-timeout-ms` mean what they mean over gRPC);
    the code, details and trailers the RPC sets are kept for the answer.
    """

    transport = "http"

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._metadata = [(name.lower(), value) for name, value in headers]
        self.code = grpc.StatusCode.OK
        self.details = ""
        self.trailing: list[tuple[str, str]] = []

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self._metadata

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, md: list[tuple[str, str]]) -> None:
        self.trailing = list(md)

    @property
    def failed(self) -> bool:
        return self.code is not grpc.StatusCode.OK

    def headers(self) -> dict[str, str]:
        """x-trace-id, x-cache; Retry-After when told to wait."""
        sent = dict(self.trailing)
        headers = {name: sent[name] for name in _ECHOED if name in sent}
        if self.code in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.UNAVAILABLE,
        ):
            pushback_ms = int(sent.get(RETRY_PUSHBACK_KEY, "1000"))
            headers["retry-after"] = str(max(math.ceil(pushback_ms / 1000), 1))
        return headers

    def error_response(self) -> JSONResponse:
        status, kind = http_status(self.code)
        return JSONResponse(
            error_json(self.details, kind, self.code.name.lower()),
            status_code=status,
            headers=self.headers(),
        )


def error_json(message: str, kind: str, code: str) -> dict[str, Any]:
    """OpenAI's error object: what its SDKs parse into their exceptions."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class Rejected:
    """Stands in for a request message the body could not be converted to;
    the RPC's own wrapper answers its error (INVALID_ARGUMENT, counted and
    traced like any other), as it does for undecodable gRPC bytes."""

    request_id = ""

    def __init__(self, error: InvalidArgument) -> None:
        self.decode_error = error


async def read_body(request: Request) -> Body | InvalidArgument:
    """The request's JSON object, or the error saying why it is not one."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_large(int(declared))
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return _too_large(len(raw))
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        return InvalidArgument(
            field="body", allowed="a JSON object", reason=f"not valid JSON ({exc})"
        )
    if not isinstance(data, dict):
        return InvalidArgument(field="body", value=data, allowed="a JSON object")
    return Body(data)


async def converted(
    request: Request, convert: Callable[[Body], T]
) -> tuple[Body, T | Rejected]:
    """The body and `convert(body)`; a body that is not JSON, or a field
    `convert` refuses, gives an empty body and a `Rejected` message."""
    body = await read_body(request)
    try:
        if isinstance(body, InvalidArgument):
            raise body
        return body, convert(body)
    except InvalidArgument as error:
        return Body({}), Rejected(error)


def _too_large(size: int) -> InvalidArgument:
    return InvalidArgument(
        field="body", value=f"{size} bytes", allowed=f"at most {MAX_BODY_BYTES} bytes"
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def run_unary(
    rpc: Callable[..., Any],
    message: Any,
    context: HttpContext,
    render: Callable[[Any], Response],
) -> Response:
    """Call a unary RPC; its reply rendered, or its error as HTTP."""
    reply = await rpc(message, context)
    if context.failed:
        return context.error_response()
    response = render(reply)
    response.headers.update(context.headers())
    return response


async def run_stream(
    rpc: Callable[..., AsyncIterator[Any]],
    message: Any,
    context: HttpContext,
    render: Callable[[AsyncIterator[Any]], AsyncIterator[bytes]],
    *,
    media_type: str,
    on_error: Callable[[HttpContext], bytes] | None,
    headers: Callable[[Any], dict[str, str]] | None = None,
) -> Response:
    """Call a streaming RPC and stream `render(replies)` as the body.

    The first reply is awaited before the answer starts, so a request refused
    up front (a bad field, no key, a spent quota) gets its HTTP status. A
    failure after that ends the body with `on_error`'s bytes (an SSE error
    event) or, where the format has no way to say it (raw audio), by
    dropping the connection. A client that leaves cancels the RPC, which
    aborts the request in the engine. `headers(first_reply)` adds headers.
    """
    replies = rpc(message, context)
    try:
        first = await anext(replies)
    except StopAsyncIteration:
        first = None
    except StreamFailed:
        await replies.aclose()
        return context.error_response()

    async def chained() -> AsyncIterator[Any]:
        if first is not None:
            yield first
        async for reply in replies:
            yield reply

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(replies), aclosing(render(chained())) as chunks:
            try:
                async for chunk in chunks:
                    yield chunk
            except StreamFailed:
                if on_error is None:
                    raise
                yield on_error(context)

    return StreamingResponse(
        body(),
        media_type=media_type,
        headers={
            **context.headers(),
            **(headers(first) if headers and first is not None else {}),
        },
    )
