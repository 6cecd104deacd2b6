"""Quota counters: fixed one-minute windows and in-flight sets, in memory or Redis.

Two stores behind one interface. `MemoryStore` (the default) keeps counters
in the replica: exact for one replica per family, each replica counting alone
otherwise. `RedisStore` keeps them in a Redis server shared by every replica
and node; each check-and-count is one Lua script, so two replicas cannot both
take the last unit of a window.

Windows are fixed minutes (`floor(now / 60)`): a rejected caller is told the
seconds until the next window starts, which is when the quota refills.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Protocol

__all__ = ["MemoryStore", "QuotaStore", "RedisStore", "StoreUnavailable", "open_store"]

WINDOW_S = 60.0


class StoreUnavailable(Exception):
    """The shared store did not answer; the caller decides what that means."""


class QuotaStore(Protocol):
    async def take(self, counter: str, amount: int, limit: int) -> float:
        """Count `amount` against `limit` in this window.

        Returns 0.0 when counted, else the seconds until the window refills
        (nothing counted). `amount` 0 asks whether anything is left. A single
        amount above the whole limit passes only in an empty window.
        """
        ...

    async def add(self, counter: str, amount: int) -> None:
        """Count `amount` after the fact (usage known only at the end)."""
        ...

    async def acquire(self, counter: str, token: str, limit: int) -> bool:
        """Join the in-flight set if it holds fewer than `limit`."""
        ...

    async def release(self, counter: str, token: str) -> None: ...

    async def close(self) -> None: ...


def _window(now: float) -> tuple[int, float]:
    """This window's number and the seconds until the next one."""
    number = math.floor(now / WINDOW_S)
    return number, (number + 1) * WINDOW_S - now


def _refused(used: int, amount: int, limit: int) -> bool:
    if amount == 0:
        return used >= limit
    return used + amount > limit and used > 0


class MemoryStore:
    """Counters in this process (one replica)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = defaultdict(int)
        self._inflight: dict[str, set[str]] = defaultdict(set)

    async def take(self, counter: str, amount: int, limit: int) -> float:
        number, left = _window(time.time())
        self._expire(number)
        used = self._counts[counter, number]
        if _refused(used, amount, limit):
            return left
        self._counts[counter, number] = used + amount
        return 0.0

    async def add(self, counter: str, amount: int) -> None:
        number, _ = _window(time.time())
        self._counts[counter, number] += amount

    async def acquire(self, counter: str, token: str, limit: int) -> bool:
        members = self._inflight[counter]
        if len(members) >= limit:
            return False
        members.add(token)
        return True

    async def release(self, counter: str, token: str) -> None:
        self._inflight[counter].discard(token)

    async def close(self) -> None:
        pass

    def _expire(self, current: int) -> None:
        stale = [k for k in self._counts if k[1] < current]
        for key in stale:
            del self._counts[key]


_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if amount == 0 then
  if used >= limit then return 0 end
  return 1
end
if used + amount > limit and used > 0 then return 0 end
redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
# An in-flight entry older than this belongs to a replica that died
# mid-request; it stops counting (longer than any request may run).
STALE_S = 3600.0


class RedisStore:
    """Counters in a Redis server shared by every replica and node."""

    def __init__(self, url: str, *, timeout_s: float = 0.5) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._take = self._redis.register_script(_TAKE)
        self._acquire = self._redis.register_script(_ACQUIRE)

    async def take(self, counter: str, amount: int, limit: int) -> float:
        number, left = _window(time.time())
        key = f"maestro:quota:{counter}:{number}"
        ttl_ms = int((left + 5) * 1000)
        taken = await self._call(self._take(keys=[key], args=[amount, limit, ttl_ms]))
        return 0.0 if taken else left

    async def add(self, counter: str, amount: int) -> None:
        number, left = _window(time.time())
        key = f"maestro:quota:{counter}:{number}"
        pipe = self._redis.pipeline()
        pipe.incrby(key, amount).pexpire(key, int((left + 5) * 1000))
        await self._call(pipe.execute())

    async def acquire(self, counter: str, token: str, limit: int) -> bool:
        now = time.time()
        key = f"maestro:inflight:{counter}"
        args = [token, limit, now - STALE_S, now, int(STALE_S * 1000)]
        return bool(await self._call(self._acquire(keys=[key], args=args)))

    async def release(self, counter: str, token: str) -> None:
        await self._call(self._redis.zrem(f"maestro:inflight:{counter}", token))

    async def close(self) -> None:
        await self._redis.aclose()

    @staticmethod
    async def _call(pending: object) -> object:
        from redis.exceptions import RedisError

        try:
            return await pending  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc


def open_store(url: str) -> QuotaStore:
    return MemoryStore() if url == "memory" else RedisStore(url)
