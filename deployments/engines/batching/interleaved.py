"""The voice micro-batcher: segments of concurrent requests run as one batch.

Why not Ray Serve's `@serve.batch`: engines must work without Ray, a request
submits several items at once (the segments of its text) that must run in
order, one per batch, so its first chunk never waits behind its own later
segments, and cancelled items must leave the queue before they cost anything.

The batch function runs on one dedicated worker thread, so the event loop
(Health, new requests, streams being sent) stays responsive while a batch
computes, and the model is only ever used by that thread. When the worker is
idle, the first item waits up to `max_wait_ms` for company; items that queue
while a batch runs go together into the next batch without extra wait.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from deployments.engines.batching.config import BatchingConfig, BatchStats

__all__ = ["InterleavedBatcher"]

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    group: Hashable
    future: asyncio.Future[Out]
    started: bool = False


class InterleavedBatcher(Generic[In, Out]):
    """Queues items and runs `run_batch(items) -> outputs` on a worker thread."""

    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        config: BatchingConfig,
        *,
        thread_name: str = "maestro-batch",
    ) -> None:
        self._run_batch = run_batch
        self.config = config
        self.stats = BatchStats()
        self._queue: collections.deque[_Pending[In, Out]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Items waiting for a batch (cancelled ones excluded)."""
        return sum(not p.future.done() for p in self._queue)

    def submit(self, item: In, *, group: Hashable) -> asyncio.Future[Out]:
        """Queue `item`; its future resolves with its output.

        Items of one `group` (a request) run in submission order, at most one
        per batch. Cancelling the future drops the item if it has not started.
        """
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            # First use, or a new event loop (tests): bind the worker to it.
            self._loop, self._wakeup = loop, asyncio.Event()
            self._worker = loop.create_task(self._work(), name="voice-batcher")
        future: asyncio.Future[Out] = loop.create_future()
        pending = _Pending(item, group, future)
        future.add_done_callback(lambda _: self._count_if_dropped(pending))
        self._queue.append(pending)
        self._wakeup.set()
        return future

    def _count_if_dropped(self, pending: _Pending[In, Out]) -> None:
        if pending.future.cancelled() and not pending.started:
            self.stats.cancelled += 1

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for pending in self._queue:
            pending.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                if self.config.max_wait_ms > 0:
                    await asyncio.sleep(self.config.max_wait_ms / 1000)
            batch = self._take_batch()
            if not batch:
                continue
            self.stats.running = len(batch)
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.item for p in batch]
                )
            except Exception as exc:
                logger.exception("batch of %d failed", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            finally:
                self.stats.running = 0
            self.stats.record(len(batch))
            for pending, output in zip(batch, outputs, strict=True):
                if not pending.future.done():
                    pending.future.set_result(output)

    def _take_batch(self) -> list[_Pending[In, Out]]:
        """Oldest items first, one per group, cancelled ones dropped."""
        batch: list[_Pending[In, Out]] = []
        groups: set[Hashable] = set()
        kept: collections.deque[_Pending[In, Out]] = collections.deque()
        while self._queue:
            pending = self._queue.popleft()
            if pending.future.done():  # cancelled by its request (counted then)
                continue
            if len(batch) < self.config.max_batch_size and pending.group not in groups:
                pending.started = True
                batch.append(pending)
                groups.add(pending.group)
            else:
                kept.append(pending)
        self._queue = kept
        return batch
