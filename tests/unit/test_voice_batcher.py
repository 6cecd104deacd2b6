"""The voice micro-batcher, with a fake batch function (no model)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from deployments.engines.batching import BatchingConfig, InterleavedBatcher


class Recorder:
    """A batch function that records its batches and can be held at a gate."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list[str]) -> list[str]:
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        if "boom" in items:
            raise RuntimeError("boom")
        return [item.upper() for item in items]


def _batcher(
    recorder: Recorder, size: int = 4, wait_ms: float = 0
) -> InterleavedBatcher:
    return InterleavedBatcher(
        recorder, BatchingConfig(max_batch_size=size, max_wait_ms=wait_ms)
    )


async def test_one_item_per_group_per_batch_in_order() -> None:
    rec = Recorder()
    batcher = _batcher(rec, wait_ms=20)
    a = [batcher.submit(f"a{i}", group="a") for i in range(3)]
    b = [batcher.submit(f"b{i}", group="b") for i in range(2)]
    assert await asyncio.gather(*a, *b) == ["A0", "A1", "A2", "B0", "B1"]
    assert rec.batches == [["a0", "b0"], ["a1", "b1"], ["a2"]]
    assert dict(batcher.stats.sizes) == {2: 2, 1: 1}
    assert rec.threads and threading.current_thread().name not in rec.threads
    batcher.close()


async def test_batches_are_capped_and_waiting_items_go_next() -> None:
    rec = Recorder()
    batcher = _batcher(rec, size=2, wait_ms=20)
    futures = [batcher.submit(str(i), group=i) for i in range(5)]
    await asyncio.gather(*futures)
    assert [len(b) for b in rec.batches] == [2, 2, 1]
    batcher.close()


async def test_cancelled_items_never_run() -> None:
    rec = Recorder()
    rec.gate.clear()  # hold the first batch on the worker
    batcher = _batcher(rec, size=1)
    first = batcher.submit("first", group="x")
    rest = [batcher.submit(f"later{i}", group="x") for i in range(3)]
    await asyncio.sleep(0.05)
    for future in rest:
        future.cancel()
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert batcher.stats.cancelled == 3 and batcher.stats.running == 1
    rec.gate.set()
    assert await first == "FIRST"
    other = await batcher.submit("other", group="y")
    assert other == "OTHER"
    assert rec.batches == [["first"], ["other"]]
    assert batcher.stats.cancelled == 3 and batcher.queued == 0
    batcher.close()


async def test_a_failing_batch_fails_its_items_and_the_batcher_goes_on() -> None:
    rec = Recorder()
    batcher = _batcher(rec, wait_ms=20)
    bad = batcher.submit("boom", group=1)
    mate = batcher.submit("mate", group=2)
    with pytest.raises(RuntimeError, match="boom"):
        await bad
    with pytest.raises(RuntimeError, match="boom"):
        await mate
    assert await batcher.submit("fine", group=3) == "FINE"
    batcher.close()


async def test_the_event_loop_runs_while_a_batch_computes() -> None:
    rec = Recorder()
    rec.gate.clear()
    batcher = _batcher(rec)
    future = batcher.submit("slow", group=1)
    ticks = 0
    while not rec.gate.is_set():
        await asyncio.sleep(0.01)
        ticks += 1
        if ticks == 5:
            rec.gate.set()
    assert await future == "SLOW" and ticks >= 5
    batcher.close()
