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
import contextvars
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from deployments.auth.guard import Ticket, gate
from deployments.errors import InvalidArgument, MaestroError, QuotaExceeded
from deployments.status import to_status
from observability import metrics, tracing

__all__ = [
    "CACHE_HEADER",
    "CACHE_STATUS_KEY",
    "REQUEST_ID_KEY",
    "RETRY_PUSHBACK_KEY",
    "TRACE_ID_KEY",
    "GrpcContext",
    "cache_mode",
    "current_caller",
    "current_deadline",
    "note_cache",
    "use_cache_mode",
    "request_id_of",
    "stream_rpc",
    "unary_rpc",
]

logger = logging.getLogger("maestro.ingress")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
REQUEST_ID_KEY = "x-request-id"
TRACE_ID_KEY = "x-trace-id"
# gRPC's own retry convention: how long a client should wait before retrying.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
MAX_REQUEST_ID_CHARS = 128
# RPCs anyone may call without a key: probes must work without secrets.
OPEN_RPCS = frozenset({"Check"})
# The API key name of the call being served; the studio passes it on to the
# family calls it makes through handles, so they are charged to that key.
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar(
    "maestro_caller", default=""
)


TIMEOUT_KEY = "x-maestro-timeout-ms"  # the Maestro clients' call timeout
# When the call being served must be answered by (monotonic seconds), when
# the client said; Ray's ingress drops gRPC's own grpc-timeout.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "maestro_deadline", default=None
)


# The response cache's one convention, for every family: a request sends
# metadata `x-maestro-cache: bypass` (neither read nor stored) or `refresh`
# (not read; the new result replaces the entry); every answer of a family
# with a cache says `x-cache: hit` or `miss` in its trailing metadata.
CACHE_HEADER = "x-maestro-cache"
CACHE_MODES = ("", "use", "bypass", "refresh")
CACHE_STATUS_KEY = "x-cache"
_CACHE_MODE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "maestro_cache_mode", default=""
)
_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "maestro_call", default=None
)


def cache_mode() -> str:
    """The call's cache directive: "" (use the cache), "bypass" or "refresh"."""
    return _CACHE_MODE.get()


def use_cache_mode(mode: str) -> None:
    """Set the directive for the rest of this call (and the child calls it
    makes), e.g. the studio bypassing the cache for an unseeded Compose."""
    _CACHE_MODE.set(mode)


def note_cache(hit: bool, cost_share: float = 1.0) -> None:
    """Tell the client whether this call was answered from the cache; a hit
    is charged `cost_share` of its quota budget."""
    call = _CALL.get()
    if call is None:
        return
    if hit:
        call.share = cost_share
    call.add_trailer(CACHE_STATUS_KEY, "hit" if hit else "miss")


def _cache_directive(value: object) -> str:
    mode = value if isinstance(value, str) else ""
    if mode not in CACHE_MODES:
        raise InvalidArgument(
            field=f"{CACHE_HEADER} metadata", value=mode, allowed="bypass or refresh"
        )
    return "" if mode == "use" else mode


def current_deadline() -> float | None:
    """`time.monotonic()` by which the client gives up on this call, if known."""
    return _DEADLINE.get()


def current_caller() -> str:
    """The key name of the call this task serves ("" when auth is off)."""
    return _CALLER.get()


class GrpcContext(Protocol):
    """The part of Ray Serve's `RayServegRPCContext` the ingress layer uses."""

    def set_code(self, code: grpc.StatusCode) -> None: ...
    def set_details(self, details: str) -> None: ...
    def set_trailing_metadata(self, md: list[tuple[str, str]]) -> None: ...
    def invocation_metadata(self) -> list[tuple[str, str]]: ...


def request_id_of(request: Any, context: GrpcContext | None) -> str:
    """The caller's `request_id` field, else its x-request-id header, else new.

    Raises InvalidArgument for an id that cannot be echoed in metadata (gRPC
    metadata values are printable ASCII).
    """
    rid = getattr(request, "request_id", "")
    if not rid and context is not None:
        rid = dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY, "")
    if not isinstance(rid, str):
        rid = ""
    if rid and not (
        len(rid) <= MAX_REQUEST_ID_CHARS and rid.isascii() and rid.isprintable()
    ):
        raise InvalidArgument(
            field="request_id",
            value=rid,
            allowed=f"1..{MAX_REQUEST_ID_CHARS} printable ASCII characters "
            "(it is echoed in x-request-id metadata); empty: the server makes one",
        )
    return rid or uuid.uuid4().hex


class StreamFailed(Exception):
    """Ends a failed stream after its status was set on the context."""


class _Call:
    """One RPC in flight: its request id, span, start time and quota ticket."""

    __slots__ = (
        "context",
        "error",
        "family",
        "rid",
        "rpc",
        "share",
        "span",
        "started",
        "ticket",
        "trailing",
        "units",
        "used",
    )

    def __init__(
        self, owner: Any, rpc: str, request: Any, context: GrpcContext | None
    ) -> None:
        self.rpc, self.started, self.context = rpc, time.monotonic(), context
        self.error: MaestroError | None = None
        self.ticket: Ticket | None = None
        self.used = self.units = 0
        self.share = 1.0  # of the quota budget, charged (less on a cache hit)
        try:
            self.rid = request_id_of(request, context)
        except InvalidArgument as exc:
            self.rid, self.error = uuid.uuid4().hex, exc
        undecodable = getattr(request, "decode_error", None)
        if undecodable is not None and self.error is None:
            self.error = undecodable
        self.family = (
            getattr(owner, "family", "")
            or type(owner).__name__.removesuffix("Deployment").lower()
        )
        engine = getattr(owner, "engine", None)
        self.span = tracing.start_span(
            f"{self.family}.{rpc}",
            {
                "rpc.system": getattr(context, "transport", "grpc"),
                "rpc.method": rpc,
                "maestro.family": self.family,
                "maestro.request_id": self.rid,
                "maestro.model": engine.config.served_id if engine else "",
                "maestro.via_handle": context is None,
            },
        )
        self.trailing = [(REQUEST_ID_KEY, self.rid)]
        if trace_id := tracing.trace_id_of(self.span):
            self.trailing.append((TRACE_ID_KEY, trace_id))
        if context is not None:
            context.set_trailing_metadata(self.trailing)

    def add_trailer(self, key: str, value: str) -> None:
        self.trailing = [*self.trailing, (key, value)]
        if self.context is not None:
            self.context.set_trailing_metadata(self.trailing)

    async def admit(
        self, owner: Any, request: Any, caller: str, cache: str = ""
    ) -> None:
        """Bad ids and bodies, then the key, its scopes and its quotas."""
        _CALL.set(self)
        if self.error is not None:
            raise self.error
        if self.context is not None:
            sent = dict(self.context.invocation_metadata() or ())
            timeout = sent.get(TIMEOUT_KEY)
            if isinstance(timeout, str) and timeout.isdigit():
                _DEADLINE.set(self.started + int(timeout) / 1000)
            cache = sent.get(CACHE_HEADER, "")
        _CACHE_MODE.set(_cache_directive(cache))
        if self.rpc in OPEN_RPCS:
            return
        guard = gate()
        if self.context is not None:
            key = guard.authenticate(self.context.invocation_metadata() or ())
            guard.authorize(key, self.family, self.rpc)
        else:  # a handle call on behalf of `caller`, checked where it entered
            key = guard.caller(caller)
        cost = getattr(owner, "request_cost", None)
        units = self.units = cost(self.rpc, request) if cost is not None else 0
        self.ticket = await guard.admit(
            key, self.family, units, direct=self.context is not None
        )
        if key is not None:
            _CALLER.set(key.name)

    def observe(self, message: Any) -> None:
        """Note the usage a response reports (text: prompt + completion tokens)."""
        usage = getattr(message, "usage", None)
        if usage is not None:
            used = usage.prompt_tokens + usage.completion_tokens
            self.used = max(self.used, used)

    async def finish(self, code: str, error: str = "") -> None:
        if self.ticket is not None:
            charged = math.ceil(self.units * self.share)
            await gate().settle(
                self.ticket,
                math.ceil(self.used * self.share),
                refund=self.units - charged,
            )
        tracing.end_span(self.span, code, error)
        metrics.inc("maestro_requests", rpc=self.rpc, code=code)
        metrics.observe(
            "maestro_request_latency_seconds",
            time.monotonic() - self.started,
            rpc=self.rpc,
        )


def _report(exc: BaseException, call: _Call) -> str:
    """Log `exc`, set its status on the context; returns the code's name."""
    code, details = to_status(exc)
    if isinstance(exc, MaestroError):
        logger.info("%s %s -> %s: %s", call.rpc, call.rid, code.name, details)
    else:
        logger.exception("%s %s failed unexpectedly", call.rpc, call.rid)
    context = call.context
    if context is not None:
        context.set_code(code)
        context.set_details(details)
        if isinstance(exc, QuotaExceeded):
            pushback = str(max(int(exc.retry_after_s * 1000), 1))
            context.set_trailing_metadata(
                [*call.trailing, (RETRY_PUSHBACK_KEY, pushback)]
            )
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
        async def rpc(
            self: Any,
            request: Any,
            grpc_context: Any = None,
            *,
            maestro_caller: str = "",
            maestro_cache: str = "",
        ) -> Resp:
            call = _Call(self, fn.__name__, request, grpc_context)
            code = "OK"
            try:
                with tracing.attached(call.span):
                    await call.admit(self, request, maestro_caller, maestro_cache)
                    response = await fn(self, request, call.rid)
                    call.observe(response)
                    return response
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception as exc:  # CancelledError is BaseException: re-raised
                code = _report(exc, call)
                if grpc_context is None:  # a DeploymentHandle call: the caller
                    raise  # gets the MaestroError itself (wrapped by Ray)
                return response_type()
            finally:
                await call.finish(code)

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
        self: Any,
        request: Any,
        grpc_context: Any = None,
        *,
        maestro_caller: str = "",
        maestro_cache: str = "",
    ) -> AsyncIterator[Resp]:
        call = _Call(self, fn.__name__, request, grpc_context)
        stream = fn(self, request, call.rid)
        code = "OK"
        try:
            with tracing.attached(call.span):
                await call.admit(self, request, maestro_caller, maestro_cache)
            while True:
                # The span is current for each step, never across a yield.
                with tracing.attached(call.span):
                    try:
                        message = await anext(stream)
                    except StopAsyncIteration:
                        break
                call.observe(message)
                yield message
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"  # deadline, disconnect, or the caller left
            raise
        except Exception as exc:
            code = _report(exc, call)
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
                await call.finish(code)

    _copy_names(rpc, fn)
    return rpc


def _copy_names(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
