"""Sending the cases, and judging each answer: acceptable or a `Finding`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import grpc

from maestro import auth
from maestro.fuzz.cases import Case, make_cases
from maestro.fuzz.families import check_families
from maestro.fuzz.results import Finding, FuzzResult

ACCEPTABLE = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
_LEAKS = re.compile(r"Traceback|<class |\b[A-Z][a-zA-Z]+(Error|Exception)\b")
# gRPC's words when a status (its details) did not fit the client's metadata limit.
_OVERSIZED = re.compile(r"metadata size exceeds|header list size|status: 5\d\d")


def _call(
    channel: grpc.Channel, case: Case, timeout_s: float, max_messages: int
) -> tuple[grpc.StatusCode, str, bool, list[bytes]]:
    """(code, details, cancelled by us, response bytes) of one call."""
    replies: list[bytes] = []
    try:
        if not case.rpc.streaming:
            stub = channel.unary_unary(case.rpc.path)
            replies.append(stub(case.body, timeout=timeout_s, metadata=case.metadata))
            return grpc.StatusCode.OK, "", False, replies
        call = channel.unary_stream(case.rpc.path)(
            case.body, timeout=timeout_s, metadata=case.metadata
        )
        for reply in call:
            replies.append(reply)
            if len(replies) >= max_messages:
                call.cancel()
                return grpc.StatusCode.CANCELLED, "", True, replies
        return call.code(), call.details() or "", False, replies
    except grpc.RpcError as error:
        return error.code(), error.details() or "", False, replies  # type: ignore[attr-defined]


def _verdict(
    case: Case, code: grpc.StatusCode, details: str, ours: bool, replies: list[bytes]
) -> str | None:
    """Why this answer is a finding, or None."""
    if code == grpc.StatusCode.CANCELLED:
        return None if ours else "CANCELLED that the client did not ask for"
    if code == grpc.StatusCode.UNIMPLEMENTED and case.kind == "bad_route":
        return None  # an unknown application: nothing serves the RPC there
    if code not in ACCEPTABLE:
        return f"{code.name} is not a status a client can act on"
    if _LEAKS.search(details):
        return "details leak Python internals"
    if _OVERSIZED.search(details):
        return "the status was too large for the client to read"
    if (code == grpc.StatusCode.OK or ours) and case.needs_rejection:
        return f"accepted a {case.kind.replace('_', ' ')} call"
    for reply in replies:
        try:
            case.rpc.response.FromString(reply)
        except Exception:
            return "response does not parse as " + case.rpc.response.DESCRIPTOR.name
    return None


def fuzz(
    target: str,
    requests: int = 1000,
    seed: int = 0,
    *,
    api_key: str | None = None,
    timeout_s: float = 15.0,
    max_seconds: float | None = None,
    concurrency: int = 4,
    max_stream_messages: int = 3,
    check: bool = True,
    disruptive: bool = False,
    progress: Callable[[int, FuzzResult], None] | None = None,
) -> FuzzResult:
    """Send `requests` generated calls to `target`; then check every family."""
    key = auth.default_api_key() if api_key is None else api_key
    result = FuzzResult()
    began = time.monotonic()
    stop_at = None if max_seconds is None else began + max_seconds
    cases = make_cases(requests, seed, key, timeout_s, disruptive)
    with (
        grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel,
        ThreadPoolExecutor(max(1, concurrency)) as pool,
    ):
        pending: dict[Future[tuple[Any, ...]], Case] = {}
        for case in cases:
            if stop_at is not None and time.monotonic() > stop_at:
                break
            if len(pending) >= 2 * max(1, concurrency):
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    _record(result, pending.pop(future), future.result(), progress)
            call = pool.submit(_call, channel, case, timeout_s, max_stream_messages)
            pending[call] = case
        for future in list(pending):
            _record(result, pending.pop(future), future.result(), progress)
    result.seconds = time.monotonic() - began
    if check:
        result.families = check_families(target, key)
    return result


def _record(
    result: FuzzResult,
    case: Case,
    answer: tuple[Any, ...],
    progress: Callable[[int, FuzzResult], None] | None,
) -> None:
    code, details, ours, replies = answer
    result.requests += 1
    result.tally[(case.rpc.name, code.name)] += 1
    result.kinds[(case.kind, code.name)] += 1
    result.examples.setdefault(
        (case.rpc.name, code.name), (details[:300], case.summary)
    )
    if why := _verdict(case, code, details, ours, replies):
        finding = Finding(
            case.rpc.name, code.name, details[:500], case.summary, case.kind, why
        )
        result.findings.append(finding)
    if progress is not None:
        progress(result.requests, result)


_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
