"""One family's response cache, as its deployment uses it.

    key = cache.key(engine, "GenerateImage", engine_request)   # None: not cached
    return await cache.unary(key, request_id, produce)          # produce() on a miss
    async for message in cache.stream(key, request_id, produce, keep=..., condense=...):
        yield message

A hit is stored as the serialized response messages (request ids blanked,
stamped with the caller's on the way out); a stream replays the kept ones:
text as its whole text and a final message, an image stream its result
event, a speech stream its chunks. Only a complete result is stored: an
error, a cancellation or a client that left stores nothing. A store that
does not answer never fails a request: it is served without the cache,
logged (once per 30 s) and counted in `maestro_cache_errors`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from deployments.cache.config import CacheConfig
from deployments.cache.keys import cache_key
from deployments.cache.stores import CacheUnavailable, StoreStats, open_store
from deployments.errors import Unavailable
from deployments.ingress import cache_mode, current_caller, note_cache
from maestro.v1 import models_pb2
from observability import metrics

__all__ = ["ResponseCache", "frame", "unframe"]

logger = logging.getLogger("maestro.cache")

Msg = TypeVar("Msg")
_LENGTH = struct.Struct(">I")
FORMAT = b"M1"  # framing version: a changed layout never reads old entries
ERROR_LOG_S = 30.0


def frame(messages: list[bytes]) -> bytes:
    """Serialized messages as one value: each length-prefixed."""
    return FORMAT + b"".join(_LENGTH.pack(len(m)) + m for m in messages)


def unframe(value: bytes) -> list[bytes] | None:
    """`frame`'s messages; None for a value in another format."""
    if not value.startswith(FORMAT):
        return None
    messages, at = [], len(FORMAT)
    while at < len(value):
        (size,) = _LENGTH.unpack_from(value, at)
        at += _LENGTH.size
        messages.append(value[at : at + size])
        at += size
    return messages


def _stamp(message: Any, request_id: str) -> Any:
    """Set `request_id` on `message` and on the messages it holds."""
    if "request_id" in message.DESCRIPTOR.fields_by_name:
        message.request_id = request_id
    for field, value in message.ListFields():
        if field.message_type is not None and not _is_repeated(field):
            _stamp(value, request_id)
    return message


def _blank(message: Any) -> Any:
    """A copy of `message` without its request id (entries hold none)."""
    copy = type(message)()
    copy.CopyFrom(message)
    return _stamp(copy, "")


def _is_repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 5.29
        return bool(field.is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


class ResponseCache:
    """The cache of one family's replica (its store may be shared)."""

    def __init__(self, family: str, config: CacheConfig) -> None:
        self.family, self.config = family, config
        self.store = (
            open_store(
                config.store,
                family=family,
                max_bytes=config.max_bytes,
                ttl_s=config.ttl_s,
                timeout_s=config.redis_timeout_s,
            )
            if config.enabled
            else None
        )
        self.errors = 0
        self._logged_at = 0.0

    # Keys -------------------------------------------------------------------

    def key(self, engine: Any, rpc: str, request: Any) -> str | None:
        """The request's key; None when it is not cached (cache off, the
        caller bypasses it, or the result is not a function of the request)."""
        if not self.wanted():
            return None
        return self.form_key(rpc, engine.cache_form(request))

    def wanted(self) -> bool:
        """Whether this call may use the cache (it is on; no bypass)."""
        return self.store is not None and cache_mode() != "bypass"

    def form_key(self, rpc: str, form: dict[str, Any] | None) -> str | None:
        """The key of a canonical request `form` (None: not cached)."""
        if form is None or not self.wanted():
            return None
        scope = current_caller() if self.config.scope == "key" else "*"
        return cache_key(family=self.family, rpc=rpc, scope=scope, form=form)

    # Serving ------------------------------------------------------------------

    async def unary(
        self,
        key: str | None,
        response_type: Callable[[], Msg],
        request_id: str,
        produce: Callable[[], Awaitable[Msg]],
    ) -> Msg:
        """The cached response, else `produce()`'s (stored)."""
        cached = await self._lookup(key)
        if cached:
            return _stamp(response_type.FromString(cached[0]), request_id)  # type: ignore[attr-defined]
        response = await produce()
        if key is not None:
            await self._keep(key, [response])
        return response

    async def stream(
        self,
        key: str | None,
        response_type: Callable[[], Msg],
        request_id: str,
        produce: Callable[[], AsyncIterator[Msg]],
        *,
        keep: Callable[[Msg], bool],
        condense: Callable[[list[Msg]], list[Msg] | None] = lambda kept: kept,
    ) -> AsyncIterator[Msg]:
        """Replay a cached stream, else yield `produce()`'s messages and store
        those `keep` selects, as `condense` makes them (None: store nothing)."""
        cached = await self._lookup(key)
        if cached:
            for raw in cached:
                yield _stamp(response_type.FromString(raw), request_id)  # type: ignore[attr-defined]
            return
        kept: list[Msg] = []
        async with aclosing(produce()) as messages:  # type: ignore[type-var]
            async for message in messages:
                if key is not None and keep(message):
                    kept.append(message)
                yield message
        if key is not None and (condensed := condense(kept)):
            await self._keep(key, condensed)

    # Operations ---------------------------------------------------------------

    async def stats(self) -> StoreStats | None:
        """The store's figures (None when off); raises CacheUnavailable."""
        return None if self.store is None else await self.store.stats()

    async def stats_message(self, family: int) -> models_pb2.CacheStats:
        """`ModelService.CacheStats`' answer (`family`: the wire's enum)."""
        config = self.config
        stats = models_pb2.CacheStats(
            family=family,  # type: ignore[arg-type]
            enabled=config.enabled,
            store=config.store_kind,
            scope=config.scope,
            max_bytes=config.max_bytes,
            errors=self.errors,
        )
        try:
            figures = await self.stats()
        except CacheUnavailable as exc:
            raise self._unavailable(exc) from None
        if figures is not None:
            stats.entries, stats.bytes = figures.entries, figures.bytes
            stats.hits, stats.misses = figures.hits, figures.misses
            stats.evictions = figures.evictions
        return stats

    async def clear_message(self) -> models_pb2.ClearCacheResponse:
        """`ModelService.ClearCache`' answer."""
        try:
            return models_pb2.ClearCacheResponse(removed=await self.clear())
        except CacheUnavailable as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: CacheUnavailable) -> Unavailable:
        return Unavailable(f"{self.family} cache store unavailable: {exc}")

    async def clear(self) -> int:
        if self.store is None:
            return 0
        removed = await self.store.clear()
        metrics.set_gauge("maestro_cache_bytes", 0, family=self.family)
        logger.info("%s cache cleared: %d entries", self.family, removed)
        return removed

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    # The store ----------------------------------------------------------------

    async def _lookup(self, key: str | None) -> list[bytes] | None:
        if self.store is None:
            return None
        if key is None or cache_mode() == "refresh":
            note_cache(hit=False)
            return None
        try:
            value = await self.store.get(key)
        except CacheUnavailable as exc:
            self._failed("lookup", exc)
            value = None
        messages = None if value is None else unframe(value)
        hit = bool(messages)
        metrics.inc(
            "maestro_cache_lookups", family=self.family, result="hit" if hit else "miss"
        )
        note_cache(hit=hit, cost_share=self.config.hit_cost_share)
        return messages

    async def _keep(self, key: str, messages: list[Any]) -> None:
        assert self.store is not None
        value = frame([_blank(m).SerializeToString() for m in messages])
        if len(value) > self.config.max_entry_bytes:
            metrics.inc("maestro_cache_too_large", family=self.family)
            return
        try:
            evicted, total = await self.store.put(key, value)
        except CacheUnavailable as exc:
            self._failed("store", exc)
            return
        if evicted:
            metrics.inc("maestro_cache_evictions", evicted, family=self.family)
        metrics.set_gauge("maestro_cache_bytes", total, family=self.family)

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        metrics.inc("maestro_cache_errors", family=self.family)
        now = time.monotonic()
        if now - self._logged_at > ERROR_LOG_S:
            logger.warning(
                "%s cache store unavailable (%s), serving without it: %s",
                self.family,
                what,
                exc,
            )
        self._logged_at = now
