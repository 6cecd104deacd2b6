"""End to end: hostile requests from every RPC's descriptor get answers a client can
act on, and every family still serves afterwards (`maestro.fuzz`)."""

from __future__ import annotations

import grpc
import pytest

from maestro import FAMILIES, MaestroClient, MaestroRpcError, fuzz

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEED = 20261127
REQUESTS = 250
WALL_S = 90  # stop sending after this; calls in flight still finish
READY_S = 300


@pytest.fixture(scope="module")
def result(server: str) -> fuzz.FuzzResult:
    with MaestroClient(server, timeout=5) as client:
        client.wait_until_serving(READY_S, FAMILIES)
    run = fuzz.fuzz(server, REQUESTS, SEED, timeout_s=15, max_seconds=WALL_S)
    print(fuzz.render(run, examples=True))
    return run


def test_every_rpc_was_fuzzed(result: fuzz.FuzzResult) -> None:
    fuzzed = {rpc for rpc, _ in result.tally}
    assert fuzzed == {rpc.name for rpc in fuzz.discover_rpcs()}, fuzz.render(result)


def test_every_answer_is_actionable(result: fuzz.FuzzResult) -> None:
    assert not result.findings, fuzz.render(result)


def test_every_family_serves_afterwards(result: fuzz.FuzzResult) -> None:
    assert [f.family for f in result.families] == list(FAMILIES)
    assert result.healthy, fuzz.render(result)


LONG_NAME = "é" * 3000  # 6 kB of UTF-8, ~18 kB percent-encoded in grpc-message
SMALL_IMAGE = {"width": 64, "height": 64, "steps": 1}


@pytest.mark.parametrize(
    ("call", "first", "kwargs"),
    [
        ("generate_text", "hi", {"max_tokens": 1, "model": LONG_NAME}),
        ("synthesize", "hi", {"model": LONG_NAME}),
        ("synthesize", "hi", {"voice": LONG_NAME}),
        ("generate_image", "x", {**SMALL_IMAGE, "model": LONG_NAME}),
        ("generate_image", "x", {**SMALL_IMAGE, "loras": {LONG_NAME: 1.0}}),
        ("health", "text", {"service": LONG_NAME}),
    ],
    ids=["text-model", "voice-model", "voice-voice", "image-model", "lora", "health"],
)
def test_a_long_unknown_name_gets_a_short_not_found(
    result: fuzz.FuzzResult,
    server: str,
    call: str,
    first: str,
    kwargs: dict[str, object],
) -> None:
    """Found by the fuzzer: NOT_FOUND echoed a huge name in full, and the
    ingress turned the oversized status into HTTP 500 (UNKNOWN)."""
    with MaestroClient(server, timeout=30, retry=None) as client:
        with pytest.raises(MaestroRpcError) as caught:
            getattr(client, call)(first, **kwargs)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND, caught.value
    assert len(caught.value.details) < 2000, caught.value.details[:200]
