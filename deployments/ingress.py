"""The ingress layer every family deployment shares.

`unary_rpc` and `stream_rpc` wrap a deployment's RPC methods so that each one
gets: a request id (echoed in trailing metadata), the one error → status
mapping of `deployments.errors`, and a log line with the traceback for
unexpected errors (the client only sees a generic INTERNAL). Called through a
`DeploymentHandle` (no gRPC context, as the studio does), the same methods
raise the MaestroError instead, so the caller can map it itself. Cancellation
(client deadline or disconnect) arrives as `asyncio.CancelledError` and is
never swallowed, so the engine below stops work for the request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from deployments.errors import MaestroError, to_status

__all__ = ["GrpcContext", "request_id_of", "stream_rpc", "unary_rpc"]

logger = logging.getLogger("maestro.ingress")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
REQUEST_ID_KEY = "x-request-id"


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


def _report(
    exc: BaseException, rpc: str, rid: str, context: GrpcContext | None
) -> None:
    code, details = to_status(exc)
    if isinstance(exc, MaestroError):
        logger.info("%s %s -> %s: %s", rpc, rid, code.name, details)
    else:
        logger.exception("%s %s failed unexpectedly", rpc, rid)
    if context is not None:
        context.set_code(code)
        context.set_details(details)


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
            rid = request_id_of(request, grpc_context)
            if grpc_context is not None:
                grpc_context.set_trailing_metadata([(REQUEST_ID_KEY, rid)])
            try:
                return await fn(self, request, rid)
            except Exception as exc:  # CancelledError is BaseException: re-raised
                _report(exc, fn.__name__, rid, grpc_context)
                if grpc_context is None:  # a DeploymentHandle call: the caller
                    raise  # gets the MaestroError itself (wrapped by Ray)
                return response_type()

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
        rid = request_id_of(request, grpc_context)
        if grpc_context is not None:
            grpc_context.set_trailing_metadata([(REQUEST_ID_KEY, rid)])
        stream = fn(self, request, rid)
        try:
            async for message in stream:
                yield message
        except Exception as exc:
            _report(exc, fn.__name__, rid, grpc_context)
            if grpc_context is None:  # a DeploymentHandle call
                raise
            # A stream's status only reaches the proxy with a message or an
            # exception; Ray keeps the code and details set above and sends
            # them, not this exception's text.
            raise StreamFailed(str(to_status(exc)[0])) from None
        finally:
            await stream.aclose()

    _copy_names(rpc, fn)
    return rpc


def _copy_names(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
