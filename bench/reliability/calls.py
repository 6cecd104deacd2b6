"""Client-side helpers: an error's code, a replica's id, a background call loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.lib.log import log
from bench.reliability.settings import CALL_EVERY_S, CALL_TIMEOUT_S
from maestro.models_client import default_models


def code_of(error: BaseException) -> str:
    from maestro import MaestroRpcError

    if isinstance(error, MaestroRpcError):
        return str(error.code.name)
    return type(error).__name__


def replica_id(client: Any, family: str) -> str | None:
    try:
        (model,) = default_models(client.list_models([family]))
    except Exception as error:
        log(f"ListModels {family}: {code_of(error)}")
        return None
    return model.stats.get("replica")


class Caller:
    """Starts `call()` every `every_s` (open loop: a slow call does not delay
    the next one); keeps (start, code, seconds) of each call."""

    def __init__(self, call: Callable[[], Any], every_s: float = CALL_EVERY_S) -> None:
        self.call, self.every_s = call, every_s
        self.calls: list[tuple[float, str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=int(CALL_TIMEOUT_S / every_s) + 8,
            thread_name_prefix="caller",
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Caller:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No new calls; wait for those in flight (each has a deadline)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True)

    def _one(self) -> None:
        began = time.monotonic()
        try:
            self.call()
            code = "OK"
        except Exception as error:
            code = code_of(error)
        with self._lock:
            self.calls.append((began, code, time.monotonic() - began))

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            next_at += self.every_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def first_ok_after(self, t: float) -> float | None:
        """When the first OK answer after `t` arrived (monotonic), else None."""
        with self._lock:
            done = [b + d for b, c, d in self.calls if c == "OK" and b + d >= t]
        return min(done) if done else None

    def snapshot(self) -> list[tuple[float, str, float]]:
        with self._lock:
            return sorted(self.calls)
