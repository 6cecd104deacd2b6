"""Call plumbing shared by the family clients: errors and server streams.

Every server-streaming method of the sync and asyncio clients yields through
`server_stream` / `aserver_stream`: gRPC errors come out as `MaestroRpcError`
and closing the iterator early cancels the call on the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import grpc

__all__ = ["aserver_stream", "rpc_error", "server_stream"]

T = TypeVar("T")


def rpc_error(error: grpc.RpcError) -> Exception:
    """The `MaestroRpcError` for a gRPC error."""
    # Imported here: maestro.client imports the family clients that use this.
    from maestro.client import MaestroRpcError

    return MaestroRpcError.from_rpc_error(error)


def server_stream(call: Any) -> Iterator[Any]:
    """The messages of a sync server-streaming call."""
    try:
        yield from call
    except grpc.RpcError as error:
        raise rpc_error(error) from None
    finally:
        call.cancel()


async def aserver_stream(call: Any) -> AsyncIterator[Any]:
    """The messages of an asyncio server-streaming call."""
    try:
        async for message in call:
            yield message
    except grpc.RpcError as error:
        raise rpc_error(error) from None
    finally:
        call.cancel()
