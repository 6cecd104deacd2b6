"""Quotas in a real Redis, shared by two gates (two replicas' worth of state).

The test starts its own `redis-server` (Debian's package); the Serve tier has
the same with two real replicas (tests/serve/test_quota_replicas.py).
"""

from __future__ import annotations

import asyncio

import pytest

from deployments.auth.config import AuthSettings, KeyEntry, Quotas
from deployments.auth.guard import Gate
from deployments.auth.keys import hash_key
from deployments.auth.quotas import RedisStore
from deployments.errors import QuotaExceeded
from observability import metrics


def _settings(url: str, name: str, **quota: int) -> AuthSettings:
    entry = KeyEntry(name=name, sha256=hash_key(name), quotas=Quotas(**quota))
    return AuthSettings(enabled=True, keys=(entry,), quota_store=url)


async def test_a_quota_holds_across_replicas(redis_url: str) -> None:
    settings = _settings(redis_url, "shared-rpm", requests_per_minute=5)
    replicas = [Gate(settings, RedisStore(redis_url)) for _ in range(2)]
    entry = settings.keys[0]
    outcomes = []
    for i in range(8):
        try:
            await replicas[i % 2].admit(entry, "text", 0, direct=True)
            outcomes.append("ok")
        except QuotaExceeded as exc:
            outcomes.append(exc.quota)
    assert outcomes == ["ok"] * 5 + ["requests_per_minute"] * 3
    for gate in replicas:
        await gate.store.close()


async def test_concurrency_and_budgets_are_shared_too(redis_url: str) -> None:
    settings = _settings(
        redis_url, "shared-conc", concurrent_requests=2, voice_chars_per_minute=100
    )
    a, b = (Gate(settings, RedisStore(redis_url)) for _ in range(2))
    entry = settings.keys[0]
    held = [await a.admit(entry, "voice", 30, direct=True)]
    held.append(await b.admit(entry, "voice", 30, direct=True))
    with pytest.raises(QuotaExceeded, match="concurrent_requests"):
        await a.admit(entry, "voice", 1, direct=True)
    await a.settle(held.pop())  # a frees the slot b took: one shared set
    with pytest.raises(QuotaExceeded, match="voice_chars_per_minute"):
        await b.admit(entry, "voice", 50, direct=True)  # 60 used of 100
    await b.admit(entry, "voice", 40, direct=True)
    for gate in (a, b):
        await gate.store.close()


async def test_concurrent_admissions_never_overshoot(redis_url: str) -> None:
    settings = _settings(redis_url, "race", requests_per_minute=10)
    gates = [Gate(settings, RedisStore(redis_url)) for _ in range(4)]
    entry = settings.keys[0]

    async def one(gate: Gate) -> bool:
        try:
            await gate.admit(entry, "text", 0, direct=True)
            return True
        except QuotaExceeded:
            return False

    results = await asyncio.gather(*(one(gates[i % 4]) for i in range(40)))
    assert sum(results) == 10
    for gate in gates:
        await gate.store.close()


async def test_redis_down_serves_unmetered_and_counts_it() -> None:
    recorder = metrics.InMemoryRecorder()
    previous = metrics.use_recorder(recorder)
    try:
        url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
        settings = _settings(url, "down", requests_per_minute=1)
        gate = Gate(settings, RedisStore(url, timeout_s=0.2))
        entry = settings.keys[0]
        for _ in range(3):  # over the quota, yet served: the store is down
            await gate.settle(await gate.admit(entry, "text", 0, direct=True))
        await gate.store.close()
    finally:
        metrics.use_recorder(previous)
    assert recorder.total("maestro_quota_store_errors") >= 3
