"""Serve tier: the response cache, shared by two replicas through a real Redis.

Two voice replicas (the real VITS engine on the demo checkpoint) behind Ray's
gRPC proxy, auth on, `cache: {enabled: true, store: redis://...}` pointing at
a `redis-server` the test starts. A seeded call is synthesized once and then
answered from the shared store by whichever replica gets it, byte for byte;
another key, an unseeded call and `x-maestro-cache: bypass` never hit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from deployments.auth.config import ADMIN, AuthSettings, KeyEntry, Quotas
from deployments.auth.keys import hash_key
from maestro import MaestroClient
from maestro.models_client import default_models
from maestro.v1 import models_pb2, models_pb2_grpc, voice_pb2, voice_pb2_grpc
from tests.helpers.voice_replicas import voice_replicas

pytestmark = pytest.mark.slow

TENANT_A, TENANT_B, OPERATOR = "mae_tenant_a", "mae_tenant_b", "mae_operator"
METERED = "mae_metered"
TEXT = "The cache holds."  # 16 characters: a voice call's quota cost
CHARS_PER_MINUTE, HIT_SHARE = 40, 0.1  # a hit costs ceil(16 * 0.1) = 2


@pytest.fixture(scope="module")
def target(demo_models: Path, redis_url: str) -> Iterator[str]:
    settings = AuthSettings(
        enabled=True,
        # Shared by both replicas, so the metered key's budget is exact.
        quota_store=redis_url,
        keys=(
            KeyEntry(name="a", sha256=hash_key(TENANT_A)),
            KeyEntry(name="b", sha256=hash_key(TENANT_B)),
            KeyEntry(
                name="metered",
                sha256=hash_key(METERED),
                quotas=Quotas(voice_chars_per_minute=CHARS_PER_MINUTE),
            ),
            KeyEntry(name="operator", sha256=hash_key(OPERATOR), scopes=("*", ADMIN)),
        ),
    )
    cache = {"enabled": True, "store": redis_url, "hit_cost_share": HIT_SHARE}
    with voice_replicas(settings, operator_key=OPERATOR, args={"cache": cache}) as t:
        yield t


def _metadata(key: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("application", "voice"), ("authorization", f"Bearer {key}"), *extra]


def _synthesize(target: str, key: str, *extra: tuple[str, str], **fields: Any):
    """(response, x-cache trailer, replica) of one Synthesize."""
    with grpc.insecure_channel(target) as channel:
        stub = voice_pb2_grpc.VoiceServiceStub(channel)
        request = voice_pb2.SynthesizeRequest(text=TEXT, **fields)
        reply, call = stub.Synthesize.with_call(
            request, metadata=_metadata(key, *extra), timeout=60
        )
    return reply, dict(call.trailing_metadata()).get("x-cache")


def _admin(target: str, rpc: str, request: Any) -> Any:
    with grpc.insecure_channel(target) as channel:
        stub = models_pb2_grpc.ModelServiceStub(channel)
        return getattr(stub, rpc)(request, metadata=_metadata(OPERATOR), timeout=30)


def test_a_seeded_call_is_synthesized_once_for_both_replicas(target: str) -> None:
    first, status = _synthesize(target, TENANT_A, seed=7)
    assert status == "miss"
    for _ in range(5):  # round robin: both replicas answer some of these
        again, status = _synthesize(target, TENANT_A, seed=7)
        assert status == "hit"
        assert again.audio == first.audio and again.info == first.info
        assert again.request_id and again.request_id != first.request_id
    with MaestroClient(target, timeout=30, api_key=OPERATOR) as client:
        synthesized = {
            m.stats["replica"]: int(m.stats["segments_synthesized"])
            for _ in range(8)
            for m in default_models(client.list_models(["voice"]))
        }
    # One synthesis in all: the replica that missed; the other only read Redis.
    assert sum(synthesized.values()) == 1, synthesized
    stats = _admin(target, "CacheStats", models_pb2.CacheStatsRequest()).stats
    assert (stats.enabled, stats.store, stats.scope) == (True, "redis", "key")
    assert stats.entries >= 1 and stats.hits >= 5


def test_other_keys_unseeded_calls_and_bypass_miss(target: str) -> None:
    _synthesize(target, TENANT_A, seed=8)
    assert _synthesize(target, TENANT_A, seed=8)[1] == "hit"
    assert _synthesize(target, TENANT_B, seed=8)[1] == "miss"  # scope: key
    assert (
        _synthesize(target, TENANT_A, ("x-maestro-cache", "bypass"), seed=8)[1]
        == "miss"
    )
    unseeded = [_synthesize(target, TENANT_A)[1] for _ in range(2)]
    assert unseeded == ["miss", "miss"]


def test_a_hit_is_charged_its_share_of_the_quota(target: str) -> None:
    # Windows are wall-clock minutes: start early in one, so that the calls
    # below all fall in it (a refill midway would let more through).
    if time.time() % 60 > 40:
        time.sleep(61 - time.time() % 60)
    codes = []
    for _ in range(8):
        try:
            codes.append(_synthesize(target, METERED, seed=11)[1])
        except grpc.RpcError as error:
            codes.append(error.code().name)
            assert "voice_chars_per_minute" in (error.details() or "")
    # Admission takes a call's full 16 characters; a hit gives back all but
    # 2 of them. The miss leaves 24 of 40, each hit 2 less, until fewer than
    # 16 are left: 5 hits. Charged in full, only the second call would fit.
    assert codes == ["miss"] + ["hit"] * 5 + ["RESOURCE_EXHAUSTED"] * 2


def test_a_stream_replays_its_chunks(target: str) -> None:
    def stream() -> tuple[list[voice_pb2.StreamSpeechResponse], str | None]:
        with grpc.insecure_channel(target) as channel:
            stub = voice_pb2_grpc.VoiceServiceStub(channel)
            request = voice_pb2.StreamSpeechRequest(
                text="One sentence. And another one.", seed=3
            )
            call = stub.StreamSpeech(request, metadata=_metadata(TENANT_A), timeout=60)
            chunks = list(call)
            return chunks, dict(call.trailing_metadata()).get("x-cache")

    first, status = stream()
    assert status == "miss" and first[-1].last
    replay, status = stream()
    assert status == "hit"
    assert [c.audio for c in replay] == [c.audio for c in first]
    assert [c.segment_index for c in replay] == [c.segment_index for c in first]


def test_clear_empties_the_shared_store(target: str) -> None:
    _synthesize(target, TENANT_A, seed=9)
    removed = _admin(target, "ClearCache", models_pb2.ClearCacheRequest()).removed
    assert removed >= 1
    assert _synthesize(target, TENANT_A, seed=9)[1] == "miss"
    with grpc.insecure_channel(target) as channel:
        stub = models_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.CacheStats(
                models_pb2.CacheStatsRequest(), metadata=_metadata(TENANT_A), timeout=30
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
