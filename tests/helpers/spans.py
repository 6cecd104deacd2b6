"""The spans of one trace in a stack's spans file (JSON lines), waited for."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from tests.helpers.serve_run import ServeRun

__all__ = ["SPAN_WAIT_S", "trace_spans"]

SPAN_WAIT_S = 20  # spans are flushed by a background thread every second


def trace_spans(
    stack: ServeRun,
    trace_id: str,
    expect: set[str],
    counts: Mapping[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """The spans of `trace_id` (by span id) once the names in `expect` are there,
    and each name in `counts` that many times (replicas flush on their own
    clocks, so one of each can be there before the rest)."""
    path = stack.spans
    deadline = time.monotonic() + SPAN_WAIT_S
    spans: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            spans = {r["span_id"]: r for r in rows if r["trace_id"] == trace_id}
            names = Counter(s["name"] for s in spans.values())
            if expect <= names.keys() and all(
                names[name] >= n for name, n in (counts or {}).items()
            ):
                return spans
        time.sleep(0.5)
    names = sorted(s["name"] for s in spans.values())
    raise AssertionError(f"trace {trace_id}: wanted {sorted(expect)}, got {names}")
