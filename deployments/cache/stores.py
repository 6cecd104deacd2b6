"""Where cached results live: in the replica, or in a Redis shared by all.

Both stores keep a family's entries under one byte budget with least
recently used eviction and a time to live, and count hits, misses and
evictions. `MemoryStore` (the default) is this replica's alone. `RedisStore`
is shared by every replica and node: each lookup and each store is one Lua
script, so the byte total, the recency index and the counters stay
consistent when replicas write at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CacheStore",
    "CacheUnavailable",
    "MemoryStore",
    "RedisStore",
    "StoreStats",
    "open_store",
]


class CacheUnavailable(Exception):
    """The shared store did not answer; the request goes on without it."""


@dataclass(frozen=True)
class StoreStats:
    entries: int
    bytes: int
    hits: int
    misses: int
    evictions: int


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The entry (refreshing its recency), or None; counts a hit or miss."""
        ...

    async def put(self, key: str, value: bytes) -> tuple[int, int]:
        """Store `value` (replacing any entry of `key`); returns the number
        of entries evicted to stay within the byte budget, and the bytes
        the family's entries now hold."""
        ...

    async def stats(self) -> StoreStats: ...

    async def clear(self) -> int:
        """Drop every entry of the family; returns how many."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """An LRU dict under a byte budget, in this process."""

    def __init__(self, *, max_bytes: int, ttl_s: float) -> None:
        self.max_bytes, self.ttl_s = max_bytes, ttl_s
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = self._hits = self._misses = self._evictions = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= time.monotonic():
            self._drop(key)
            entry = None
        if entry is None:
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry[1]

    async def put(self, key: str, value: bytes) -> tuple[int, int]:
        self._drop(key)
        now = time.monotonic()
        self._entries[key] = (now + self.ttl_s, value)
        self._bytes += len(value)
        for stale in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            self._drop(stale)
        evicted = 0
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
            evicted += 1
        self._evictions += evicted
        return evicted, self._bytes

    async def stats(self) -> StoreStats:
        return StoreStats(
            len(self._entries), self._bytes, self._hits, self._misses, self._evictions
        )

    async def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        self._bytes = 0
        return removed

    async def close(self) -> None:
        self._entries.clear()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])


# KEYS: entry, lru (zset: entry -> last use, in microseconds of the server's
# clock), sizes (hash), total, counters.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""
_GET = (
    _NOW
    + """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('ZADD', KEYS[2], 'XX', now, KEYS[1])
  redis.call('HINCRBY', KEYS[5], 'hits', 1)
else
  redis.call('HINCRBY', KEYS[5], 'misses', 1)
end
return value
"""
)
# ARGV: value, ttl ms, byte budget. An entry last used more than a TTL ago
# has expired (it was stored before that): its size stops counting.
_PUT = (
    _NOW
    + """
local function drop(k)
  local size = redis.call('HGET', KEYS[3], k)
  if size then redis.call('DECRBY', KEYS[4], size) end
  redis.call('HDEL', KEYS[3], k)
  redis.call('ZREM', KEYS[2], k)
  redis.call('DEL', k)
end
drop(KEYS[1])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('HSET', KEYS[3], KEYS[1], string.len(ARGV[1]))
redis.call('INCRBY', KEYS[4], string.len(ARGV[1]))
redis.call('ZADD', KEYS[2], now, KEYS[1])
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000)) do
  drop(k)
end
local evicted = 0
while tonumber(redis.call('GET', KEYS[4]) or '0') > tonumber(ARGV[3]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 then break end
  drop(oldest[1])
  evicted = evicted + 1
end
if evicted > 0 then redis.call('HINCRBY', KEYS[5], 'evictions', evicted) end
return {evicted, tonumber(redis.call('GET', KEYS[4]) or '0')}
"""
)
_CLEAR = """
local entries = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, k in ipairs(entries) do redis.call('DEL', k) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return #entries
"""


class RedisStore:
    """Entries in a Redis server, shared by every replica of the family."""

    def __init__(
        self, url: str, *, family: str, max_bytes: int, ttl_s: float, timeout_s: float
    ) -> None:
        import redis.asyncio as redis

        self.max_bytes, self.ttl_ms = max_bytes, max(int(ttl_s * 1000), 1)
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        prefix = f"maestro:cache:{family}"
        self._index = [f"{prefix}:lru", f"{prefix}:sizes", f"{prefix}:bytes"]
        self._counters = f"{prefix}:counters"
        self._entry_prefix = f"{prefix}:entry:"
        self._get = self._redis.register_script(_GET)
        self._put = self._redis.register_script(_PUT)
        self._clear = self._redis.register_script(_CLEAR)

    def _keys(self, key: str) -> list[str]:
        return [self._entry_prefix + key, *self._index, self._counters]

    async def get(self, key: str) -> bytes | None:
        value = await self._call(self._get(keys=self._keys(key)))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> tuple[int, int]:
        args = [value, self.ttl_ms, self.max_bytes]
        evicted, total = await self._call(self._put(keys=self._keys(key), args=args))  # type: ignore[misc]
        return int(evicted), int(total)

    async def stats(self) -> StoreStats:
        pipe = self._redis.pipeline()
        pipe.zcard(self._index[0]).get(self._index[2]).hgetall(self._counters)
        entries, total, counters = await self._call(pipe.execute())  # type: ignore[misc]
        count = {k.decode(): int(v) for k, v in (counters or {}).items()}
        return StoreStats(
            int(entries),
            int(total or 0),
            count.get("hits", 0),
            count.get("misses", 0),
            count.get("evictions", 0),
        )

    async def clear(self) -> int:
        return int(await self._call(self._clear(keys=self._keys(""))))  # type: ignore[call-overload]

    async def close(self) -> None:
        await self._redis.aclose()

    @staticmethod
    async def _call(pending: object) -> object:
        from redis.exceptions import RedisError

        try:
            return await pending  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(str(exc) or type(exc).__name__) from exc


def open_store(
    url: str, *, family: str, max_bytes: int, ttl_s: float, timeout_s: float
) -> CacheStore:
    if url == "memory":
        return MemoryStore(max_bytes=max_bytes, ttl_s=ttl_s)
    return RedisStore(
        url, family=family, max_bytes=max_bytes, ttl_s=ttl_s, timeout_s=timeout_s
    )
