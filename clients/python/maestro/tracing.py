"""Client side of Maestro's traces: W3C traceparent out, trace ids back.

Every Maestro RPC returns the id of its trace in trailing metadata
(`x-trace-id`) when the server recorded it. `TraceIds` is a channel
interceptor that collects those ids and, with `start_traces=True`, starts a
new sampled trace per call by sending a `traceparent` header, so the server
records that call whatever its sampling ratio. `maestro --trace ...` uses it.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import grpc

__all__ = ["TRACE_ID_KEY", "TraceIds", "new_traceparent", "traced_channel"]

TRACE_ID_KEY = "x-trace-id"


def new_traceparent() -> tuple[str, str]:
    """A sampled W3C `traceparent` for a new trace, and that trace's id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


class TraceIds(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
):
    """Collects the trace id of every finished call on the channel."""

    def __init__(self, *, start_traces: bool = False) -> None:
        self.start_traces = start_traces
        self.trace_ids: list[str] = []  # returned by the server
        self.started: list[str] = []  # sent in a traceparent (start_traces)
        self._lock = threading.Lock()

    def _with_traceparent(self, details: Any) -> Any:
        if not self.start_traces:
            return details
        metadata = [(k, v) for k, v in details.metadata or () if k != "traceparent"]
        traceparent, _ = new_traceparent()
        metadata.append(("traceparent", traceparent))
        with self._lock:
            self.started.append(traceparent)
        return details._replace(metadata=metadata)

    def _note(self, call: Any) -> None:
        for key, value in call.trailing_metadata() or ():
            if key == TRACE_ID_KEY and value:
                with self._lock:
                    if value not in self.trace_ids:
                        self.trace_ids.append(value)

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        call = continuation(self._with_traceparent(details), request)
        call.add_done_callback(self._note)
        return call

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        call = continuation(self._with_traceparent(details), request)
        call.add_done_callback(self._note)
        return call


def traced_channel(
    channel: grpc.Channel, *, start_traces: bool = True
) -> tuple[grpc.Channel, TraceIds]:
    """`channel` with a `TraceIds` interceptor; returns both."""
    ids = TraceIds(start_traces=start_traces)
    return grpc.intercept_channel(channel, ids), ids
