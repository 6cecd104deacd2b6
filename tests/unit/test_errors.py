"""The one mapping from exceptions to gRPC status codes."""

from __future__ import annotations

import grpc

from deployments.errors import (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from deployments.status import to_status


def test_each_error_has_its_code() -> None:
    cases = {
        InvalidArgument(field="width", value=1000, allowed="64..2048"): (
            grpc.StatusCode.INVALID_ARGUMENT
        ),
        NotFound(what="model", name="x", available=["demo"]): grpc.StatusCode.NOT_FOUND,
        ResourceExhausted("queue full"): grpc.StatusCode.RESOURCE_EXHAUSTED,
        Unavailable("loading"): grpc.StatusCode.UNAVAILABLE,
        Unimplemented("later"): grpc.StatusCode.UNIMPLEMENTED,
    }
    for error, code in cases.items():
        assert to_status(error) == (code, str(error))


def test_messages_name_field_value_and_range() -> None:
    message = str(InvalidArgument(field="width", value=1000, allowed="64..2048"))
    assert message == "width (got 1000); allowed: 64..2048"
    assert "'x' not found; available: demo" in str(
        NotFound(what="model", name="x", available=["demo"])
    )


def test_unexpected_errors_stay_generic() -> None:
    code, details = to_status(KeyError("secret internal detail"))
    assert code == grpc.StatusCode.INTERNAL
    assert "secret" not in details and "Traceback" not in details


def test_long_names_and_details_stay_small_on_the_wire() -> None:
    # Details travel percent-encoded in one HTTP/2 trailer: a 100k-character
    # model name echoed whole burst the client's metadata limit (a reset).
    code, details = to_status(
        NotFound(what="model", name="é" * 100_000, available=["a"])
    )
    assert code == grpc.StatusCode.NOT_FOUND and len(details.encode()) < 300
    _, long = to_status(Unavailable("x" * 50_000))
    assert len(long.encode()) <= 1000 and long.endswith("[truncated]")
