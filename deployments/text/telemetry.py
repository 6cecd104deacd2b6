"""The text family's engine span and metrics, observed from the engine's deltas.

`observed(deltas, ...)` passes every delta through unchanged and, when the
request ends, records what it saw: one `text.engine.<op>` span (prompt and
output tokens, TTFT, queue time, finish reason) and the `maestro_text_*`
metrics. Nothing is recorded per token, so a stream costs the same whatever
its length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from opentelemetry.trace import Span

from deployments.engines.text.types import TextDelta
from deployments.status import code_name
from observability import metrics, tracing

__all__ = ["collect", "observed"]


async def observed(
    deltas: AsyncIterator[TextDelta],
    *,
    op: str,
    running: Callable[[], int],
) -> AsyncIterator[TextDelta]:
    """`deltas`, with the request's span and metrics recorded at its end."""
    span = tracing.start_span(f"text.engine.{op}")
    started = time.monotonic()
    first = last = None
    final: TextDelta | None = None
    code = "OK"
    metrics.set_gauge("maestro_text_running_requests", running() + 1)
    try:
        async with aclosing(deltas):
            async for delta in deltas:
                now = time.monotonic()
                if first is None and delta.completion_tokens:
                    first = now
                    metrics.observe(
                        "maestro_text_time_to_first_token_seconds", now - started
                    )
                last, final = now, delta
                yield delta
    except (asyncio.CancelledError, GeneratorExit):
        # Closed after the last delta (the pacer does so) is a finished request.
        code = "OK" if final and final.finish_reason else "CANCELLED"
        raise
    except Exception as exc:
        code = code_name(exc)
        raise
    finally:
        _record(span, final, started, first, last, code)
        metrics.set_gauge("maestro_text_running_requests", running())


def _record(
    span: Span,
    final: TextDelta | None,
    started: float,
    first: float | None,
    last: float | None,
    code: str,
) -> None:
    prompt = final.prompt_tokens if final else 0
    output = final.completion_tokens if final else 0
    if prompt:
        metrics.inc("maestro_text_prompt_tokens", prompt)
    if output:
        metrics.inc("maestro_text_output_tokens", output)
    if first is not None and last is not None and output > 1:
        metrics.observe(
            "maestro_text_inter_token_latency_seconds", (last - first) / (output - 1)
        )
    queue = final.queue_seconds if final else None
    if queue is not None:
        metrics.observe("maestro_text_queue_time_seconds", queue)
    if span.is_recording():
        span.set_attribute("maestro.text.prompt_tokens", prompt)
        span.set_attribute("maestro.text.output_tokens", output)
        if first is not None:
            span.set_attribute("maestro.text.ttft_s", first - started)
        if queue is not None:
            span.set_attribute("maestro.text.queue_s", queue)
        if final and final.finish_reason:
            span.set_attribute("maestro.text.finish_reason", final.finish_reason)
    tracing.end_span(span, code)


async def collect(deltas: AsyncIterator[TextDelta]) -> TextDelta:
    """The whole completion as one delta (what `TextEngine.generate` returns)."""
    parts: list[str] = []
    last = TextDelta(text="")
    async with aclosing(deltas):
        async for delta in deltas:
            parts.append(delta.text)
            last = delta
    last.text = "".join(parts)
    return last
