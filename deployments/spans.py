"""Spans the family engines open around their own work (beside the RPC span)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Span

from deployments.status import code_name
from observability import tracing

__all__ = ["ending"]


@contextmanager
def ending(span: Span) -> Iterator[None]:
    """End `span` with the status of how the block ended (OK, CANCELLED, ...)."""
    code = "OK"
    try:
        yield
    except (asyncio.CancelledError, GeneratorExit):
        code = "CANCELLED"
        raise
    except Exception as exc:
        code = code_name(exc)
        raise
    finally:
        tracing.end_span(span, code)
