"""Server streams, shared by every family's sync and asyncio clients.

Every server-streaming method of the sync and asyncio clients yields through
`server_stream` / `aserver_stream`: gRPC errors come out as `MaestroRpcError`
and closing the iterator early cancels the call on the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import grpc

from maestro.errors import rpc_error

__all__ = ["aserver_stream", "server_stream"]

T = TypeVar("T")


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
