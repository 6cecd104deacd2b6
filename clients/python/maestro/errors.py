"""The one error the clients raise: `MaestroRpcError`."""

from __future__ import annotations

from typing import Any

import grpc

__all__ = ["MaestroRpcError", "rpc_error"]


class MaestroRpcError(Exception):
    """A call failed: `code` (grpc.StatusCode), `details`, `request_id`."""

    def __init__(
        self, code: grpc.StatusCode, details: str, request_id: str = ""
    ) -> None:
        self.code, self.details, self.request_id = code, details, request_id
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> MaestroRpcError:
        call: Any = error
        trailing = dict(call.trailing_metadata() or ())
        return cls(call.code(), call.details() or "", trailing.get("x-request-id", ""))


def rpc_error(error: grpc.RpcError) -> MaestroRpcError:
    """The `MaestroRpcError` for a gRPC error."""
    return MaestroRpcError.from_rpc_error(error)
