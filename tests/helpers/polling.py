"""Poll a condition until it holds; fail naming what never came."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["await_for", "wait_for"]


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25
) -> Any:
    """Poll `condition` until truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def await_for(
    condition: Callable[[], Any], timeout: float, what: str, every: float = 0.5
) -> None:
    """`wait_for` from a coroutine: `condition` runs in a thread (it may block)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)
