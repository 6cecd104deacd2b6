"""The client's stream plumbing: early close cancels the call, errors map.

The gRPC call is a stand-in here (iterable, `cancel()`); the end-to-end tests
run the same code against the real stack.
"""

from __future__ import annotations

from contextlib import aclosing

import grpc
import pytest

from maestro import MaestroRpcError
from maestro.streams import aserver_stream, server_stream


class _Call:
    def __init__(self, messages: list[int], error: grpc.RpcError | None = None):
        self.messages, self.error, self.cancelled = messages, error, False

    def __iter__(self):
        yield from self.messages
        if self.error:
            raise self.error

    async def __aiter__(self):
        for message in self:
            yield message

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _Failed(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INVALID_ARGUMENT

    def details(self) -> str:
        return "steps: 0 not in 1..50"

    def trailing_metadata(self) -> tuple:
        return ()


def _outer_sync(call: _Call):
    yield from server_stream(call)


async def _outer_async(call: _Call):
    async with aclosing(aserver_stream(call)) as messages:
        async for message in messages:
            yield message


def test_sync_early_close_cancels_the_call() -> None:
    call = _Call([1, 2, 3])
    stream = _outer_sync(call)
    assert next(stream) == 1 and not call.cancelled
    stream.close()
    assert call.cancelled


async def test_async_early_close_cancels_the_call_at_once() -> None:
    call = _Call([1, 2, 3])
    stream = _outer_async(call)
    assert await anext(stream) == 1 and not call.cancelled
    await stream.aclose()
    assert call.cancelled


def test_errors_come_out_as_maestro_errors() -> None:
    call = _Call([1], _Failed())
    with pytest.raises(MaestroRpcError) as info:
        list(_outer_sync(call))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "steps" in info.value.details


async def test_async_errors_come_out_as_maestro_errors() -> None:
    call = _Call([1], _Failed())
    with pytest.raises(MaestroRpcError, match="steps"):
        [m async for m in _outer_async(call)]
    assert call.cancelled
