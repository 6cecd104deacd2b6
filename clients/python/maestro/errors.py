"""The one error the clients raise: `MaestroRpcError`."""

from __future__ import annotations

from typing import Any

import grpc

__all__ = ["MaestroRpcError", "retry_after_s", "rpc_error"]


RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
LOST_REPLICA = "the server reset the call (its replica was lost); retry"
# How gRPC reports an HTTP/2 stream the other side reset (RST_STREAM) or a
# connection that went away mid-call, as CANCELLED.
_RESET_MARKERS = ("RST_STREAM", "Stream removed", "Socket closed")


def _reset_by_peer(details: str) -> bool:
    return any(marker in details for marker in _RESET_MARKERS)


class MaestroRpcError(Exception):
    """A call failed: `code` (grpc.StatusCode), `details`, `request_id`.

    `retry_after_s`: set when the server said when to try again (a quota,
    from trailing metadata `grpc-retry-pushback-ms`), else None.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        request_id: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        self.code, self.details, self.request_id = code, details, request_id
        self.retry_after_s = retry_after_s
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> MaestroRpcError:
        call: Any = error
        code, details = call.code(), call.details() or ""
        if code == grpc.StatusCode.CANCELLED and _reset_by_peer(details):
            # The clients cancel only by closing the call, which raises no
            # RpcError here; a reset they did not cause is a lost replica.
            code = grpc.StatusCode.UNAVAILABLE
            details = f"{LOST_REPLICA}: {details}"
        return cls(
            code,
            details,
            trailing_value(error, "x-request-id") or "",
            retry_after_s(error),
        )


def trailing_value(error: grpc.RpcError, key: str) -> str | None:
    call: Any = error
    try:
        trailing = call.trailing_metadata() or ()
    except Exception:  # an error raised before the call had metadata
        return None
    for name, value in trailing:
        if name == key:
            return value if isinstance(value, str) else value.decode()
    return None


def retry_after_s(error: grpc.RpcError) -> float | None:
    """Seconds the server asked the client to wait, when it said."""
    value = trailing_value(error, RETRY_PUSHBACK_KEY)
    try:
        return None if value is None else max(int(value), 0) / 1000
    except ValueError:
        return None


def rpc_error(error: grpc.RpcError) -> MaestroRpcError:
    """The `MaestroRpcError` for a gRPC error."""
    return MaestroRpcError.from_rpc_error(error)
