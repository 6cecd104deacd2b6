"""The ingress layer every family deployment shares.

`unary_rpc` and `stream_rpc` wrap a deployment's RPC methods so that each one
gets: a request id (echoed in trailing metadata), the one error → status
mapping of `deployments.errors`, and a log line with the traceback for
unexpected errors (the client only sees a generic INTERNAL). Called through a
`DeploymentHandle` (no gRPC context, as the studio does), the same methods
raise the MaestroError instead, so the caller can map it itself. Cancellation
(client deadline or disconnect) arrives as `asyncio.CancelledError` and is
never swallowed, so the engine below stops work for the request.

Each call is also observed here: a `{family}.{Rpc}` span under Ray's replica
span (its trace id goes back in trailing metadata as `x-trace-id` when the
trace is recorded), and the `maestro_requests` / `maestro_request_latency_seconds`
metrics by RPC and status code.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from deployments.errors import MaestroError
from deployments.status import to_status
from observability import metrics, tracing

__all__ = [
    "REQUEST_ID_KEY",
    "TRACE_ID_KEY",
    "GrpcContext",
    "request_id_of",
    "stream_rpc",
    "unary_rpc",
]

logger = logging.getLogger("maestro.ingress")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
REQUEST_ID_KEY = "x-request-id"
TRACE_ID_KEY = "x-trace-id"


class GrpcContext(Protocol):
    """The part of Ray Serve's `RayServegRPCContext` the ingress layer uses."""

    def set_code(self, code: grpc.StatusCode) -> None: ...
    def set_details(self, details: str) -> None: ...
    def set_trailing_metadata(self, md: list[tuple[str, str]]) -> None: ...
    def invocation_metadata(self) -> list[tuple[str, str]]: ...


def request_id_of(request: Any, context: GrpcContext | None) -> str:
    """The caller's `request_id` field, else its x-request-id header, else new."""
    rid = getattr(request, "request_id", "")
    if not rid and context is not None:
        rid = dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY, "")
    return rid or uuid.uuid4().hex


class StreamFailed(Exception):
    """Ends a failed stream after its status was set on the context."""


class _Call:
    """One RPC in flight: its request id, span and start time."""

    __slots__ = ("rid", "rpc", "span", "started")

    def __init__(
        self, owner: Any, rpc: str, request: Any, context: GrpcContext | None
    ) -> None:
        self.rpc, self.started = rpc, time.monotonic()
        self.rid = request_id_of(request, context)
        family = type(owner).__name__.removesuffix("Deployment").lower()
        engine = getattr(owner, "engine", None)
        self.span = tracing.start_span(
            f"{family}.{rpc}",
            {
                "rpc.system": "grpc",
                "rpc.method": rpc,
                "maestro.family": family,
                "maestro.request_id": self.rid,
                "maestro.model": engine.config.served_id if engine else "",
                "maestro.via_handle": context is None,
            },
        )
        if context is not None:
            trailing = [(REQUEST_ID_KEY, self.rid)]
            if trace_id := tracing.trace_id_of(self.span):
                trailing.append((TRACE_ID_KEY, trace_id))
            context.set_trailing_metadata(trailing)

    def finish(self, code: str, error: str = "") -> None:
        tracing.end_span(self.span, code, error)
        metrics.inc("maestro_requests", rpc=self.rpc, code=code)
        metrics.observe(
            "maestro_request_latency_seconds",
            time.monotonic() - self.started,
            rpc=self.rpc,
        )


def _report(exc: BaseException, rpc: str, rid: str, context: GrpcContext | None) -> str:
    """Log `exc`, set its status on the context; returns the code's name."""
    code, details = to_status(exc)
    if isinstance(exc, MaestroError):
        logger.info("%s %s -> %s: %s", rpc, rid, code.name, details)
    else:
        logger.exception("%s %s failed unexpectedly", rpc, rid)
    if context is not None:
        context.set_code(code)
        context.set_details(details)
    return code.name


def unary_rpc(
    response_type: Callable[[], Resp],
) -> Callable[[Callable[..., Awaitable[Resp]]], Callable[..., Awaitable[Resp]]]:
    """Wrap `async def Rpc(self, request, request_id) -> response`.

    On error the status is set on the context and an empty `response_type()`
    is returned: gRPC sends the status, not the message.
    """

    def wrap(fn: Callable[..., Awaitable[Resp]]) -> Callable[..., Awaitable[Resp]]:
        # Ray Serve reads the signature to decide whether to pass grpc_context,
        # so the wrapper must not hide it behind functools.wraps' __wrapped__.
        async def rpc(self: Any, request: Any, grpc_context: Any = None) -> Resp:
            call = _Call(self, fn.__name__, request, grpc_context)
            code = "OK"
            try:
                with tracing.attached(call.span):
                    return await fn(self, request, call.rid)
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception as exc:  # CancelledError is BaseException: re-raised
                code = _report(exc, fn.__name__, call.rid, grpc_context)
                if grpc_context is None:  # a DeploymentHandle call: the caller
                    raise  # gets the MaestroError itself (wrapped by Ray)
                return response_type()
            finally:
                call.finish(code)

        _copy_names(rpc, fn)
        return rpc

    return wrap


def stream_rpc(
    fn: Callable[..., AsyncIterator[Resp]],
) -> Callable[..., AsyncIterator[Resp]]:
    """Wrap `async def Rpc(self, request, request_id)` yielding responses.

    An error ends the stream with its status; messages already sent stay sent.
    """

    async def rpc(
        self: Any, request: Any, grpc_context: Any = None
    ) -> AsyncIterator[Resp]:
        call = _Call(self, fn.__name__, request, grpc_context)
        stream = fn(self, request, call.rid)
        code = "OK"
        try:
            while True:
                # The span is current for each step, never across a yield.
                with tracing.attached(call.span):
                    try:
                        message = await anext(stream)
                    except StopAsyncIteration:
                        break
                yield message
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"  # deadline, disconnect, or the caller left
            raise
        except Exception as exc:
            code = _report(exc, fn.__name__, call.rid, grpc_context)
            if grpc_context is None:  # a DeploymentHandle call
                raise
            # A stream's status only reaches the proxy with a message or an
            # exception; Ray keeps the code and details set above and sends
            # them, not this exception's text.
            raise StreamFailed(str(to_status(exc)[0])) from None
        finally:
            try:
                await stream.aclose()
            finally:
                call.finish(code)

    _copy_names(rpc, fn)
    return rpc


def _copy_names(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
