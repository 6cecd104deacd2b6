"""Dynamic batching of image requests: compatible ones become one pipeline call.

A diffusion step costs nearly the same for one image as for several on a busy
accelerator (and less per image on the demo CPU too), but only
requests that share everything the pipeline treats per batch (size, steps,
scheduler, adapters, guidance, ...) can ride together. The caller supplies a
`key` saying which; the batcher groups by it, oldest request first.

Policy: the oldest queued request leads the next batch. The batcher waits at
most `max_wait_ms` for compatible ones, counted from when that request
arrived or the previous batch finished, whichever is later, then runs what it
has. It waits only while it expects more: until the batch holds as many
images as the largest of the last few batches (capped at `max_batch_size`).
A lone client therefore never waits, while N clients that send their next
request as soon as an answer arrives (their requests trickle back over a few
ms, some while the previous batch still runs) are gathered into batches of N
again instead of splitting into, say, 1 + 3 for good. Incompatible requests
run in later batches, still oldest first, so none waits longer than the wait
plus the batches queued ahead of it. One batch runs at a time: the pipeline is
neither thread-safe nor faster when run twice at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from deployments.engines.batching.config import BatchingConfig, BatchStats

__all__ = ["KeyedBatcher"]

T = TypeVar("T")
# Batches remembered to predict the next one's size (a few seconds of load).
_HISTORY = 8


@dataclass(eq=False)
class _Entry(Generic[T]):
    item: T
    key: Hashable
    size: int
    arrived: float


class KeyedBatcher(Generic[T]):
    """Collects items and hands compatible groups to `run`, one at a time."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[None]],
        *,
        key: Callable[[T], Hashable],
        size: Callable[[T], int],
        config: BatchingConfig,
    ) -> None:
        self._run, self._key, self._size = run, key, size
        self.config = config
        self._queue: list[_Entry[T]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()
        self.running = 0  # items in the batch being run
        self._recent: deque[int] = deque(maxlen=_HISTORY)
        self._free_since = 0.0  # when the last batch finished
        # Called after each batch with its items and the seconds it ran
        # (telemetry hooks in here; a listener must not raise or block).
        self.listeners: list[Callable[[list[T], float], None]] = []

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, item: T) -> None:
        """Queue `item`; it runs in a later batch (starts the loop lazily)."""
        entry = _Entry(item, self._key(item), self._size(item), time.monotonic())
        self._queue.append(entry)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def discard(self, item: T) -> bool:
        """Drop a still-queued item (its caller went away); False if not queued."""
        for i, entry in enumerate(self._queue):
            if entry.item is item:
                del self._queue[i]
                return True
        return False

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._collect()
            if not batch:
                continue
            images = sum(self._size(item) for item in batch)
            self.stats.record(images)
            self._recent.append(images)
            self.running = self.stats.running = len(batch)
            started = time.monotonic()
            try:
                await self._run(batch)
            finally:
                self.running = self.stats.running = 0
                self._free_since = time.monotonic()
            for listener in self.listeners:
                listener(batch, self._free_since - started)

    async def _collect(self) -> list[T]:
        """Wait until the head's batch is full or its wait is over; take it."""
        limit = self.config.max_batch_size
        expected = min(limit, max(self._recent, default=1))
        while self._queue:
            head = self._queue[0]
            filled = sum(e.size for e in self._queue if e.key == head.key)
            start = max(head.arrived, self._free_since)
            left = start + self.config.max_wait_ms / 1000 - time.monotonic()
            if filled >= expected or left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=left)
            except TimeoutError:
                pass
        if not self._queue:  # everything waiting was discarded meanwhile
            return []
        head = self._queue[0]
        taken: list[_Entry[T]] = []
        total = 0
        for entry in self._queue:
            # The head always goes, even if it alone exceeds the limit.
            if entry.key == head.key and (not taken or total + entry.size <= limit):
                taken.append(entry)
                total += entry.size
        ids = {id(e) for e in taken}
        self._queue = [e for e in self._queue if id(e) not in ids]
        return [e.item for e in taken]
