"""Pacing of server streams: how often a stream may send a message.

Every streamed message costs CPU whatever it carries (~1 ms through Ray's
Python proxy, ~0.05 ms with the HAProxy ingress `deployments.launch` turns
on), while the engine makes a token per stream every few milliseconds. One
message per token therefore spends the CPU the engine needs once many streams
are open. Instead, a replica holds a budget of messages per second shared by
its open streams: with one stream each token is its own message; with 32 and
a budget of 1000, each stream sends every 32 ms; never slower than
`max_interval_ms`, so text keeps arriving.

The pacer only decides *when a stream pulls* its next output. While a stream
waits, vLLM's per-request output collector merges the deltas it produces, so
coalescing costs nothing per token here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MessagePacer", "StreamPacingConfig", "paced"]

T = TypeVar("T")


class StreamPacingConfig(BaseModel):
    """Message budget of one replica's server streams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages_per_second: float = Field(
        1000.0,
        gt=0,
        description="Stream messages per second the replica aims to send in all, "
        "shared by its open streams. Lower it where the proxy path is slower.",
    )
    max_interval_ms: float = Field(
        100.0,
        ge=0,
        description="Upper bound on the time between two messages of one stream "
        "while it has new output; 0 sends every output at once.",
    )


class MessagePacer:
    """Replica-wide message budget; one instance per deployment replica."""

    def __init__(self, config: StreamPacingConfig) -> None:
        self._rate = config.messages_per_second
        self._max_interval = config.max_interval_ms / 1000.0
        self.open_streams = 0

    def interval(self) -> float:
        """Seconds a stream waits between messages at the current load."""
        return min(self._max_interval, self.open_streams / self._rate)

    @contextmanager
    def stream(self) -> Iterator[None]:
        self.open_streams += 1
        try:
            yield
        finally:
            self.open_streams -= 1


async def paced(
    source: AsyncIterator[T], pacer: MessagePacer, is_last: Callable[[T], bool]
) -> AsyncIterator[T]:
    """Yield from `source`, pulling no sooner than the pacer allows.

    The first item goes out at once, so time to first token is not delayed,
    and nothing waits after the last one.
    """
    with pacer.stream():
        async with aclosing(source):  # type: ignore[type-var]
            async for item in source:
                yield item
                if is_last(item):
                    return
                if (delay := pacer.interval()) > 0:
                    await asyncio.sleep(delay)
