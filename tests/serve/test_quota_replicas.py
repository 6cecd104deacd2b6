"""Serve tier: one key's quota holds across two replicas through a real Redis.

Two voice replicas (the real VITS engine on the demo checkpoint) behind Ray's
gRPC proxy, auth on with `quota_store: redis://...` pointing at a
`redis-server` the test starts. Calls spread over both replicas (each
replica's ListModels shows segments it synthesized), yet the key gets exactly
its requests_per_minute: counted per replica, it would get up to twice that.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from deployments.auth.config import AuthSettings, KeyEntry, Quotas
from deployments.auth.keys import hash_key
from deployments.launch import free_port
from maestro import MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from tests.helpers.voice_replicas import voice_replicas

pytestmark = pytest.mark.slow

LIMITED, OPERATOR = "mae_limited_voice", "mae_operator"
HTTP_LIMITED, TEXT_ONLY = "mae_http_limited", "mae_text_only"
RPM = 12  # calls land on both replicas but for a (1/2)**11 chance
HTTP_RPM = 2
HTTP_PORT = free_port()


@pytest.fixture(scope="module")
def target(demo_models: Path, redis_url: str) -> Iterator[str]:
    settings = AuthSettings(
        enabled=True,
        quota_store=redis_url,
        keys=(
            KeyEntry(
                name="limited",
                sha256=hash_key(LIMITED),
                quotas=Quotas(requests_per_minute=RPM),
            ),
            KeyEntry(name="operator", sha256=hash_key(OPERATOR)),
            KeyEntry(
                name="http-limited",
                sha256=hash_key(HTTP_LIMITED),
                quotas=Quotas(requests_per_minute=HTTP_RPM),
            ),
            KeyEntry(name="text-only", sha256=hash_key(TEXT_ONLY), scopes=("text",)),
        ),
    )
    with voice_replicas(settings, operator_key=OPERATOR, http_port=HTTP_PORT) as target:
        yield target


def _synthesized_by_replica(client: MaestroClient) -> dict[str, int]:
    """Each replica's segments_synthesized, polling until both answered."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        (model,) = default_models(client.list_models(["voice"]))
        seen[model.stats["replica"]] = int(model.stats["segments_synthesized"])
    return seen


def test_requests_per_minute_hold_across_two_replicas(target: str) -> None:
    codes = []
    with MaestroClient(target, timeout=30, api_key=LIMITED, retry=None) as client:
        for i in range(RPM + 4):
            try:
                client.synthesize(f"call {i}.")
                codes.append("OK")
            except MaestroRpcError as error:
                codes.append(error.code.name)
                assert "requests_per_minute" in error.details
                # The pushback the server sent (a value of the contract).
                assert error.retry_after_s and error.retry_after_s > 0  # a value
    assert codes == ["OK"] * RPM + ["RESOURCE_EXHAUSTED"] * 4
    with MaestroClient(target, timeout=30, api_key=OPERATOR) as client:
        per_replica = _synthesized_by_replica(client)
    assert len(per_replica) == 2 and all(n > 0 for n in per_replica.values()), (
        f"calls did not reach both replicas: {per_replica}"
    )


def test_no_key_is_unauthenticated_through_the_proxy(target: str) -> None:
    with MaestroClient(target, timeout=30, api_key="") as client:
        with pytest.raises(MaestroRpcError) as info:
            client.synthesize("hi")
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_http_speech_gets_the_same_keys_scopes_and_quotas(target: str) -> None:
    """The OpenAI-compatible endpoint runs the same RPC: 401, 403 naming the
    scope, and the shared quota as 429 with Retry-After, in OpenAI's JSON."""
    url = f"http://127.0.0.1:{HTTP_PORT}/v1/audio/speech"
    body = {"input": "Hello there.", "response_format": "pcm"}

    def post(key: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(url, json=body, headers=headers, timeout=30)

    assert post("").status_code == 401
    denied = post(TEXT_ONLY)
    assert denied.status_code == 403
    assert "voice" in denied.json()["error"]["message"]
    assert denied.json()["error"]["type"] == "permission_error"
    answers = [post(HTTP_LIMITED) for _ in range(HTTP_RPM + 1)]
    assert [a.status_code for a in answers] == [200] * HTTP_RPM + [429]
    assert answers[0].headers["content-type"] == "audio/pcm"
    assert len(answers[0].content) > 0
    refused = answers[-1]
    assert "requests_per_minute" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    # Retry-After is the quota's own wait (the message's "retry in X s",
    # which gRPC sends as grpc-retry-pushback-ms), in whole seconds up.
    said = re.search(r"retry in ([0-9.]+) s", refused.json()["error"]["message"])
    assert said is not None, refused.text
    wait = float(said[1])
    assert math.ceil(wait) <= int(refused.headers["retry-after"]) <= math.ceil(wait) + 1
