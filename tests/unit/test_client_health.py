"""`health` and `wait_until_serving` of both clients, against an in-process Health."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError
from maestro.cli import main
from tests.helpers import free_port
from tests.helpers.grpc_server import in_process_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NEVER = 10**9


class Starting(health_pb2_grpc.HealthServicer):
    """Each application NOT_SERVING for its first `ready_after` Checks.

    Applications it does not know answer NOT_FOUND, as Ray's proxy does for
    one that is not deployed (yet).
    """

    def __init__(self) -> None:
        self.ready_after: dict[str, int] = {}
        self.calls: Counter[str] = Counter()

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        family = dict(context.invocation_metadata()).get("application", "")
        if family not in self.ready_after:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no application {family!r}")
        self.calls[family] += 1
        serving = self.calls[family] > self.ready_after[family]
        return health_pb2.HealthCheckResponse(
            status=SERVING if serving else NOT_SERVING
        )


@pytest.fixture
def server() -> Iterator[tuple[str, Starting]]:
    starting = Starting()
    add = health_pb2_grpc.add_HealthServicer_to_server
    with in_process_server(starting, add) as target:
        yield target, starting


def test_wait_returns_once_every_family_serves(server) -> None:
    target, starting = server
    starting.ready_after = {"text": 2, "voice": 0}
    with MaestroClient(target, timeout=5) as client:
        client.wait_until_serving(5, ["text", "voice"], interval=0.01)
        assert client.health("text") == SERVING
    # A family that answered SERVING is not asked again.
    assert starting.calls == {"text": 4, "voice": 1}


def test_wait_names_each_family_not_serving(server) -> None:
    target, starting = server
    starting.ready_after = {"text": 0, "image": NEVER}
    began = time.monotonic()
    with MaestroClient(target, timeout=5) as client:
        with pytest.raises(TimeoutError) as error:
            client.wait_until_serving(0.3, ["text", "image", "voice"], interval=0.05)
    assert time.monotonic() - began < 2
    message = str(error.value)
    assert message.startswith("not SERVING after 0.3 s: image (NOT_SERVING), ")
    assert "voice (NOT_FOUND: no application 'voice')" in message
    assert "text" not in message


def test_wait_on_a_server_that_is_not_there_times_out() -> None:
    with MaestroClient(f"127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(TimeoutError, match=r"after 0.2 s: text \(UNAVAILABLE"):
            client.wait_until_serving(0.2, "text", interval=0.05)


async def test_async_client_health_and_wait(server) -> None:
    target, starting = server
    starting.ready_after = {"text": 3, "image": NEVER}
    async with AsyncMaestroClient(target, timeout=5) as client:
        assert await client.health("image") == NOT_SERVING
        with pytest.raises(MaestroRpcError) as error:
            await client.health("voice")
        assert error.value.code == grpc.StatusCode.NOT_FOUND
        await client.wait_until_serving(5, ["text"], interval=0.01)
        assert await client.health("text") == SERVING
        with pytest.raises(TimeoutError, match=r"image \(NOT_SERVING\)$"):
            await client.wait_until_serving(0.2, ["image"], interval=0.05)


def test_cli_wait_says_what_serves_or_what_does_not(server, capsys) -> None:
    target, starting = server
    starting.ready_after = {"text": 0}
    args = ["--target", target, "wait", "--seconds", "0.3"]
    assert main([*args, "text"]) == 0
    assert capsys.readouterr().out == "SERVING: text\n"
    assert main([*args, "text", "voice"]) == 1
    assert "voice (NOT_FOUND" in capsys.readouterr().err
