"""The response cache without Ray: keys, both stores, replay and tenancy.

The Redis tests start a real `redis-server` (Debian's package; skipped
without it, as the quota tests are).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployments.cache.config import CacheConfig
from deployments.cache.keys import cache_key, fingerprint
from deployments.cache.responses import ResponseCache, frame, unframe
from deployments.cache.stores import CacheUnavailable, MemoryStore, RedisStore
from deployments.engines.base import Engine
from deployments.ingress import _CACHE_MODE, _CALLER
from deployments.text.converters import condense_stream
from maestro.v1 import text_pb2
from observability import metrics


@dataclass(frozen=True)
class Ask:
    prompt: str
    seed: int | None = None
    request_id: str = ""


class FakeEngine(Engine):
    """Only what the cache asks of an engine: `cache_form` (no model runs)."""

    family = "text"

    def __init__(self, files: str = "v1") -> None:
        super().__init__(type("C", (), {"model_dump": lambda self, mode: {}})())
        self.files_print = files

    ready = True
    engine_name = "fake 1"

    async def _load(self) -> None: ...
    async def _unload(self) -> None: ...

    def cache_form(self, request: Ask) -> dict[str, Any] | None:
        if request.seed is None:
            return None
        return self._identified({"prompt": request.prompt, "seed": request.seed})


def _reply(text: str, rid: str = "r1") -> text_pb2.GenerateTextResponse:
    return text_pb2.GenerateTextResponse(text=text, model="m", request_id=rid)


async def test_memory_store_evicts_least_recently_used_past_its_budget() -> None:
    store = MemoryStore(max_bytes=10, ttl_s=60)
    await store.put("a", b"aaaa")
    await store.put("b", b"bbbb")
    assert await store.get("a") == b"aaaa"  # a is now the most recent
    evicted, total = await store.put("c", b"cccc")
    assert (evicted, total) == (1, 8)
    assert await store.get("b") is None and await store.get("a") == b"aaaa"
    stats = await store.stats()
    assert (stats.entries, stats.hits, stats.misses, stats.evictions) == (2, 2, 1, 1)


async def test_memory_store_entries_expire() -> None:
    store = MemoryStore(max_bytes=100, ttl_s=0.05)
    await store.put("a", b"x")
    await asyncio.sleep(0.1)
    assert await store.get("a") is None
    assert (await store.stats()).bytes == 0


def test_keys_ignore_field_order_and_differ_by_scope_and_rpc() -> None:
    one = cache_key(family="text", rpc="R", scope="k", form={"a": 1, "b": (2, b"x")})
    same = cache_key(family="text", rpc="R", scope="k", form={"b": [2, b"x"], "a": 1})
    assert one == same
    assert one != cache_key(family="text", rpc="R", scope="other", form={"a": 1})
    assert one != cache_key(
        family="text", rpc="S", scope="k", form={"a": 1, "b": (2, b"x")}
    )


def test_fingerprint_changes_when_a_file_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"1234")
    before = fingerprint(str(tmp_path))
    assert fingerprint(str(tmp_path)) == before  # reading changes nothing
    os.utime(tmp_path / "weights.bin", ns=(1, 1))
    assert fingerprint(str(tmp_path)) != before
    assert fingerprint("Org/hub-model") == "id:Org/hub-model"


def test_frames_round_trip() -> None:
    messages = [b"", b"abc", bytes(range(256))]
    assert unframe(frame(messages)) == messages
    assert unframe(b"other") is None


def _cache(**settings: Any) -> ResponseCache:
    return ResponseCache("text", CacheConfig(enabled=True, **settings))


async def test_hit_after_miss_is_byte_identical_and_restamped() -> None:
    cache, engine, calls = _cache(), FakeEngine(), []

    async def produce() -> text_pb2.GenerateTextResponse:
        calls.append(1)
        return _reply("hello", rid="first")

    key = cache.key(engine, "GenerateText", Ask("p", seed=1))
    first = await cache.unary(key, text_pb2.GenerateTextResponse, "first", produce)
    again = await cache.unary(key, text_pb2.GenerateTextResponse, "second", produce)
    assert len(calls) == 1
    assert again.request_id == "second"
    assert replace_rid(again, "first") == first.SerializeToString()


def replace_rid(message: Any, rid: str) -> bytes:
    copy = type(message)()
    copy.CopyFrom(message)
    copy.request_id = rid
    return copy.SerializeToString()


async def test_unseeded_bypass_and_off_are_never_cached() -> None:
    engine = FakeEngine()
    assert _cache().key(engine, "GenerateText", Ask("p")) is None
    assert ResponseCache("text", CacheConfig()).key(engine, "G", Ask("p", 1)) is None
    token = _CACHE_MODE.set("bypass")
    try:
        assert _cache().key(engine, "GenerateText", Ask("p", seed=1)) is None
    finally:
        _CACHE_MODE.reset(token)


async def test_refresh_replaces_the_entry() -> None:
    cache, engine = _cache(), FakeEngine()
    key = cache.key(engine, "G", Ask("p", seed=1))
    texts = iter(["old", "new"])

    async def produce() -> text_pb2.GenerateTextResponse:
        return _reply(next(texts))

    await cache.unary(key, text_pb2.GenerateTextResponse, "a", produce)
    token = _CACHE_MODE.set("refresh")
    try:
        fresh = await cache.unary(key, text_pb2.GenerateTextResponse, "b", produce)
    finally:
        _CACHE_MODE.reset(token)
    served = await cache.unary(key, text_pb2.GenerateTextResponse, "c", produce)
    assert fresh.text == served.text == "new"


def test_a_changed_model_or_another_key_misses() -> None:
    cache = _cache()
    key = cache.key(FakeEngine("v1"), "G", Ask("p", seed=1))
    assert key != cache.key(FakeEngine("v2"), "G", Ask("p", seed=1))
    token = _CALLER.set("tenant-b")
    try:
        assert key != cache.key(FakeEngine("v1"), "G", Ask("p", seed=1))
        shared = _cache(scope="global")
        other = shared.key(FakeEngine("v1"), "G", Ask("p", seed=1))
    finally:
        _CALLER.reset(token)
    assert other == shared.key(FakeEngine("v1"), "G", Ask("p", seed=1))


async def test_a_stream_replays_condensed_and_a_broken_one_stores_nothing() -> None:
    cache, engine = _cache(), FakeEngine()
    parts = [
        text_pb2.StreamTextResponse(text="a", model="m"),
        text_pb2.StreamTextResponse(text="b", model="m"),
        text_pb2.StreamTextResponse(
            finish_reason=text_pb2.FINISH_REASON_LENGTH,
            usage=text_pb2.Usage(prompt_tokens=3, completion_tokens=2),
            model="m",
        ),
    ]

    def produce(fail: bool = False) -> Any:
        async def gen() -> Any:
            for i, part in enumerate(parts):
                if fail and i == 1:
                    raise RuntimeError("engine died")
                yield part

        return gen

    broken = cache.key(engine, "StreamText", Ask("broken", seed=1))
    with pytest.raises(RuntimeError):
        async for _ in cache.stream(
            broken, text_pb2.StreamTextResponse, "r", produce(fail=True),
            keep=lambda m: True, condense=condense_stream,
        ):  # fmt: skip
            pass
    assert (await cache.stats()).entries == 0

    key = cache.key(engine, "StreamText", Ask("p", seed=1))
    runs = []
    for rid in ("r1", "r2"):
        runs.append(
            [
                m
                async for m in cache.stream(
                    key,
                    text_pb2.StreamTextResponse,
                    rid,
                    produce(),
                    keep=lambda m: True,
                    condense=condense_stream,
                )
            ]  # fmt: skip
        )
    assert len(runs[0]) == 3 and len(runs[1]) == 2
    replay = runs[1]
    assert replay[0].text == "ab" and replay[0].request_id == "r2"
    assert replay[1].finish_reason == text_pb2.FINISH_REASON_LENGTH
    assert replay[1].usage.completion_tokens == 2


async def test_an_entry_above_the_entry_limit_is_served_not_stored() -> None:
    cache, engine = _cache(max_entry_bytes=8), FakeEngine()
    key = cache.key(engine, "G", Ask("p", seed=1))

    async def produce() -> text_pb2.GenerateTextResponse:
        return _reply("a long text that does not fit")

    reply = await cache.unary(key, text_pb2.GenerateTextResponse, "r", produce)
    assert reply.text.startswith("a long")
    assert (await cache.stats()).entries == 0


def _redis_cache(url: str, **settings: Any) -> ResponseCache:
    # The redis-server is shared by the whole session (the Serve-tier cache
    # tests run first and use "voice"): a family of its own keeps the counters
    # this file asserts on to itself.
    return ResponseCache("unit-voice", CacheConfig(enabled=True, store=url, **settings))


async def test_redis_entries_are_shared_by_two_replicas(redis_url: str) -> None:
    a, b = _redis_cache(redis_url), _redis_cache(redis_url)
    await a.clear()
    engine, calls = FakeEngine(), []

    async def produce() -> text_pb2.GenerateTextResponse:
        calls.append(1)
        return _reply("spoken")

    key = a.key(engine, "Synthesize", Ask("hi", seed=2))
    assert key == b.key(engine, "Synthesize", Ask("hi", seed=2))
    await a.unary(key, text_pb2.GenerateTextResponse, "1", produce)
    served = await b.unary(key, text_pb2.GenerateTextResponse, "2", produce)
    assert served.text == "spoken" and len(calls) == 1
    stats = await b.stats()
    assert (stats.entries, stats.hits, stats.misses) == (1, 1, 1)
    assert await b.clear() == 1
    for cache in (a, b):
        await cache.close()


async def test_redis_store_evicts_oldest_past_the_byte_budget(redis_url: str) -> None:
    store = RedisStore(
        redis_url, family="evict-test", max_bytes=10, ttl_s=60, timeout_s=1
    )
    await store.clear()
    await store.put("a", b"aaaa")
    await store.put("b", b"bbbb")
    await asyncio.sleep(0.002)  # recency is by the server's clock
    assert await store.get("a") == b"aaaa"
    await asyncio.sleep(0.002)
    assert await store.put("c", b"cccc") == (1, 8)
    assert await store.get("b") is None
    assert (await store.stats()).evictions >= 1
    await store.clear()
    await store.close()


async def test_redis_entries_expire(redis_url: str) -> None:
    store = RedisStore(
        redis_url, family="ttl-test", max_bytes=100, ttl_s=0.05, timeout_s=1
    )
    await store.put("a", b"x")
    await asyncio.sleep(0.2)
    assert await store.get("a") is None
    await store.clear()
    await store.close()


async def test_redis_down_serves_without_the_cache() -> None:
    recorder = metrics.InMemoryRecorder()
    previous = metrics.use_recorder(recorder)
    cache = _redis_cache("redis://127.0.0.1:1/0", redis_timeout_s=0.2)
    engine, calls = FakeEngine(), []

    async def produce() -> text_pb2.GenerateTextResponse:
        calls.append(1)
        return _reply("still served")

    key = cache.key(engine, "Synthesize", Ask("hi", seed=2))
    for _ in range(2):
        reply = await cache.unary(key, text_pb2.GenerateTextResponse, "r", produce)
        assert reply.text == "still served"
    assert len(calls) == 2 and cache.errors >= 2
    assert recorder.total("maestro_cache_errors") >= 2
    with pytest.raises(CacheUnavailable):
        await cache.stats()
    await cache.close()
    metrics.use_recorder(previous)


def test_entry_limit_must_fit_the_budget() -> None:
    with pytest.raises(ValueError, match="max_entry_bytes"):
        CacheConfig(max_bytes=10, max_entry_bytes=11)
    with pytest.raises(ValueError, match="redis"):
        CacheConfig(store="postgres://x")
