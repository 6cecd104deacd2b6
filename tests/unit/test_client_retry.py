"""The client retries UNAVAILABLE with backoff, for idempotent calls only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError, RetryPolicy
from maestro.v1 import models_pb2, models_pb2_grpc, text_pb2, text_pb2_grpc
from tests.helpers.grpc_server import in_process_server

FAST = RetryPolicy(attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)


class Flaky(
    models_pb2_grpc.ModelServiceServicer,
    text_pb2_grpc.TextServiceServicer,
    health_pb2_grpc.HealthServicer,
):
    """Fails the first `failures` calls of each RPC with `code`."""

    def __init__(self) -> None:
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.details = "try again"
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, rpc: str, context: grpc.ServicerContext) -> None:
        self.calls[rpc] = self.calls.get(rpc, 0) + 1
        if self.calls[rpc] <= self.failures:
            context.abort(self.code, self.details)

    def ListModels(self, request, context):  # type: ignore[no-untyped-def]
        self._maybe_fail("ListModels", context)
        return models_pb2.ListModelsResponse(models=[models_pb2.ModelInfo(id="m")])

    def GenerateText(self, request, context):  # type: ignore[no-untyped-def]
        self._maybe_fail("GenerateText", context)
        return text_pb2.GenerateTextResponse(text="ok")

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        self._maybe_fail("Check", context)
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING
        )


@pytest.fixture
def server() -> Iterator[tuple[str, Flaky]]:
    flaky = Flaky()
    with in_process_server(
        flaky,
        models_pb2_grpc.add_ModelServiceServicer_to_server,
        text_pb2_grpc.add_TextServiceServicer_to_server,
        health_pb2_grpc.add_HealthServicer_to_server,
    ) as target:
        yield target, flaky


def test_reads_retry_unavailable_until_they_succeed(server) -> None:
    target, flaky = server
    flaky.failures = 2
    with MaestroClient(target, timeout=5, retry=FAST) as client:
        assert [m.id for m in client.list_models(["text"])] == ["m"]
        assert client.health("text") == health_pb2.HealthCheckResponse.SERVING
    assert flaky.calls == {"ListModels": 3, "Check": 3}


def test_only_seeded_generations_retry(server) -> None:
    target, flaky = server
    flaky.failures = 1
    with MaestroClient(target, timeout=5, retry=FAST) as client:
        assert client.generate_text("hi", seed=7).text == "ok"
        assert flaky.calls["GenerateText"] == 2
        flaky.calls.clear()
        with pytest.raises(MaestroRpcError) as error:
            client.generate_text("hi")  # unseeded: a retry could answer otherwise
        assert error.value.code == grpc.StatusCode.UNAVAILABLE
        assert flaky.calls["GenerateText"] == 1


def test_other_codes_and_exhausted_attempts_are_raised(server) -> None:
    target, flaky = server
    flaky.failures = 10
    flaky.code = grpc.StatusCode.INVALID_ARGUMENT
    with MaestroClient(target, timeout=5, retry=FAST) as client:
        with pytest.raises(MaestroRpcError) as error:
            client.health("text")
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert flaky.calls["Check"] == 1
        flaky.code = grpc.StatusCode.UNAVAILABLE
        with pytest.raises(MaestroRpcError) as error:
            client.list_models(["text"])
        assert error.value.code == grpc.StatusCode.UNAVAILABLE
        assert flaky.calls["ListModels"] == FAST.attempts
    with MaestroClient(target, timeout=5, retry=None) as client:
        with pytest.raises(MaestroRpcError):
            client.list_models(["text"])
    assert flaky.calls["ListModels"] == FAST.attempts + 1


def test_one_deadline_bounds_every_attempt(server) -> None:
    target, flaky = server
    flaky.failures = 10**6
    patient = RetryPolicy(attempts=10**6, initial_backoff_s=0.05, max_backoff_s=0.1)
    began = time.monotonic()
    with MaestroClient(target, timeout=0.8, retry=patient) as client:
        with pytest.raises(MaestroRpcError) as error:
            client.list_models(["text"])
    assert error.value.code in {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
    assert time.monotonic() - began < 2.0
    assert flaky.calls["ListModels"] > 3


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=0.5)
    for retry, cap in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        draws = [policy.backoff_s(retry) for _ in range(200)]
        assert 0 <= min(draws) and max(draws) <= cap
        assert max(draws) > cap * 0.8  # full jitter spans the range
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


async def test_async_client_retries_reads_and_seeded_generations(server) -> None:
    target, flaky = server
    flaky.failures = 2
    async with AsyncMaestroClient(target, timeout=5, retry=FAST) as client:
        assert [m.id for m in await client.list_models(["text"])] == ["m"]
        assert (await client.generate_text("hi", seed=1)).text == "ok"
    assert flaky.calls == {"ListModels": 3, "GenerateText": 3}


def test_a_replica_lost_mid_call_is_retried_but_other_internal_errors_are_not(
    server,
) -> None:
    target, flaky = server
    flaky.failures = 1
    flaky.code = grpc.StatusCode.INTERNAL
    # What Ray's Python proxy answers when the replica's node dies mid-call.
    flaky.details = "The actor died because its node has died. Node Id: 1f2e"
    with MaestroClient(target, timeout=5, retry=FAST) as client:
        assert client.health("voice") == health_pb2.HealthCheckResponse.SERVING
        assert flaky.calls["Check"] == 2
        flaky.calls.clear()
        flaky.details = "internal error; see the server log"  # Maestro's own
        with pytest.raises(MaestroRpcError) as error:
            client.health("voice")
        assert error.value.code == grpc.StatusCode.INTERNAL
        assert flaky.calls["Check"] == 1
