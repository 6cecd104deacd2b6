"""Stream pacing: per-token messages when alone, bounded intervals under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from deployments.streaming import MessagePacer, StreamPacingConfig, paced


def test_interval_grows_with_open_streams_and_is_capped() -> None:
    pacer = MessagePacer(
        StreamPacingConfig(messages_per_second=100, max_interval_ms=80)
    )
    assert pacer.interval() == 0
    pacer.open_streams = 1
    assert pacer.interval() == 0.01
    pacer.open_streams = 4
    assert pacer.interval() == 0.04
    pacer.open_streams = 32
    assert pacer.interval() == 0.08


async def _ticks(n: int, every: float) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(every)
        yield i


async def test_paced_streams_share_the_budget() -> None:
    """Four streams on a 40 msg/s budget: each pulls at most every 0.1 s."""
    pacer = MessagePacer(
        StreamPacingConfig(messages_per_second=40, max_interval_ms=500)
    )
    arrivals: list[list[float]] = [[] for _ in range(4)]

    async def consume(k: int) -> None:
        async for _ in paced(_ticks(12, 0.01), pacer, is_last=lambda i: i == 11):
            arrivals[k].append(time.monotonic())

    await asyncio.gather(*(consume(k) for k in range(4)))
    assert pacer.open_streams == 0
    for times in arrivals:
        # every item is delivered; pulls are spaced by the shared interval
        assert len(times) == 12
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.09


async def test_last_item_is_not_followed_by_a_wait() -> None:
    pacer = MessagePacer(
        StreamPacingConfig(messages_per_second=1, max_interval_ms=5000)
    )
    start = time.monotonic()
    items = [i async for i in paced(_ticks(1, 0), pacer, is_last=lambda i: i == 0)]
    assert items == [0]
    assert pacer.open_streams == 0
    assert time.monotonic() - start < 1.0
