"""How the clients name what went wrong: resets they did not cause, quota waits."""

from __future__ import annotations

import grpc

from maestro import MaestroRpcError
from maestro.errors import LOST_REPLICA


class FakeRpcError(grpc.RpcError):
    """The three things grpcio's call errors answer (a real one needs a peer)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing=()) -> None:
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):  # type: ignore[no-untyped-def]
        return self._trailing


def test_a_stream_reset_the_client_did_not_cause_is_unavailable() -> None:
    # What a client sees when the replica serving its stream is killed.
    reset = FakeRpcError(
        grpc.StatusCode.CANCELLED,
        "Stream removed (RST_STREAM with error code 8)",
    )
    error = MaestroRpcError.from_rpc_error(reset)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.details.startswith(LOST_REPLICA)


def test_other_cancellations_stay_cancelled() -> None:
    error = MaestroRpcError.from_rpc_error(
        FakeRpcError(grpc.StatusCode.CANCELLED, "request cancelled")
    )
    assert error.code == grpc.StatusCode.CANCELLED


def test_quota_pushback_and_request_id_come_from_trailing_metadata() -> None:
    error = MaestroRpcError.from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "quota requests_per_minute exceeded",
            [("x-request-id", "abc"), ("grpc-retry-pushback-ms", "2500")],
        )
    )
    assert (error.request_id, error.retry_after_s) == ("abc", 2.5)
    plain = MaestroRpcError.from_rpc_error(
        FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "x")
    )
    assert plain.retry_after_s is None
