"""Spans: the exporter Ray imports, and the helpers Maestro's layers use.

Ray Serve owns the tracer provider of each replica and proxy: it calls
`span_processors()` (named by RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH, which
`deployments.launch` derives from serve_config.yaml) and samples new traces
at RAY_SERVE_TRACING_SAMPLING_RATIO. Maestro's spans are created through the
global OpenTelemetry API, so they land in the same provider and under Ray's
`replica_handle_request` span; without a provider (unit tests, engines used
alone) every helper here is a no-op.

Spans are never made "current" across an async generator's `yield` (the
next step may run in another context); `attached()` scopes a span to one
step instead, so handle calls and child spans made in that step join it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, Status, StatusCode

from maestro import envs

__all__ = [
    "JsonLinesSpanExporter",
    "attached",
    "current_span",
    "end_span",
    "span_processors",
    "start_span",
    "trace_id_of",
]

_tracer = trace.get_tracer("maestro")
# Spans reach the exporter in batches from a background thread, so a request
# never waits on a write; a second is short enough for tests and tail -f.
_BATCH_DELAY_MS = 1000


def current_span() -> Span:
    """The span current in this context (an invalid one when none is)."""
    return trace.get_current_span()


def start_span(name: str, attributes: Mapping[str, Any] | None = None) -> Span:
    """A span under the current one (not made current; see `attached`)."""
    return _tracer.start_span(name, attributes=attributes)


@contextmanager
def attached(span: Span) -> Iterator[None]:
    """Make `span` current for a block that does not cross a generator yield."""
    if not span.is_recording():
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def end_span(span: Span, code_name: str, error: str = "") -> None:
    """Record the gRPC status and end `span`."""
    if span.is_recording():
        span.set_attribute("rpc.grpc.status", code_name)
        if code_name != "OK":
            span.set_status(Status(StatusCode.ERROR, error or code_name))
    span.end()


def trace_id_of(span: Span) -> str:
    """The span's trace id in hex, or "" when the trace is not recorded."""
    ctx = span.get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return ""
    return format(ctx.trace_id, "032x")


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span to a file shared by all processes.

    Each batch is a single `write` on an O_APPEND descriptor, so lines from
    different replicas never interleave. Past `max_bytes` the writer that
    notices rotates the file (under an flock, so one process does it) to
    `.1`, `.2`, ...; the others see the inode change and reopen.
    """

    def __init__(
        self, path: str | Path, *, max_bytes: int | None = None, backups: int = 3
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.backups = max_bytes, backups
        self._lock = threading.Lock()
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_record(s)) + "\n" for s in spans).encode()
        with self._lock:
            if self._fd < 0:
                return SpanExportResult.FAILURE
            if self.max_bytes is not None:
                self._rotate_if_due()
            os.write(self._fd, data)
        return SpanExportResult.SUCCESS

    def _rotate_if_due(self) -> None:
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(self._fd)
        if current is None or current.st_ino != mine.st_ino:
            self._reopen()  # another process rotated it
            return
        if mine.st_size < (self.max_bytes or 0):
            return
        with open(f"{self.path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = os.stat(self.path)
            if now.st_ino == mine.st_ino:  # nobody rotated it meanwhile
                self._shift()
        self._reopen()

    def _shift(self) -> None:
        if self.backups == 0:
            os.unlink(self.path)
            return
        for i in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{i}")
            if older.exists():
                os.replace(older, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _reopen(self) -> None:
        os.close(self._fd)
        self._fd = self._open()

    def shutdown(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The JSON-lines form of a span (ids in hex, times in unix ns)."""
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "resource": dict(span.resource.attributes),
        "pid": os.getpid(),
    }


def span_processors() -> list[Any]:
    """Ray's exporter hook (no arguments): where this process sends spans.

    Reads the MAESTRO_TRACING_* variables `deployments.launch` derives from
    the `observability.tracing` block of serve_config.yaml.
    """
    kind = envs.MAESTRO_TRACING_EXPORTER.get()
    endpoint = envs.MAESTRO_TRACING_ENDPOINT.get()
    exporter: SpanExporter
    if kind == "otlp_grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        exporter = GrpcExporter(endpoint=endpoint, insecure=True)
    elif kind == "otlp_http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        exporter = HttpExporter(endpoint=endpoint)
    else:
        exporter = JsonLinesSpanExporter(
            envs.MAESTRO_TRACING_FILE.get(),
            max_bytes=envs.MAESTRO_TRACING_FILE_MAX_BYTES.get(),
            backups=envs.MAESTRO_TRACING_FILE_BACKUPS.get(),
        )
    return [BatchSpanProcessor(exporter, schedule_delay_millis=_BATCH_DELAY_MS)]
