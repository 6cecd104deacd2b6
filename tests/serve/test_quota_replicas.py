"""Serve tier: one key's quota holds across two replicas through a real Redis.

Two voice replicas (the real VITS engine on the demo checkpoint) behind Ray's
gRPC proxy, auth on with `quota_store: redis://...` pointing at a
`redis-server` the test starts. Calls spread over both replicas (each
replica's ListModels shows segments it synthesized), yet the key gets exactly
its requests_per_minute: counted per replica, it would get up to twice that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from deployments.auth.config import AuthSettings, KeyEntry, Quotas
from deployments.auth.keys import hash_key
from maestro import MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from tests.helpers.voice_replicas import voice_replicas

pytestmark = pytest.mark.slow

LIMITED, OPERATOR = "mae_limited_voice", "mae_operator"
RPM = 12  # calls land on both replicas but for a (1/2)**11 chance


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
        ),
    )
    with voice_replicas(settings, operator_key=OPERATOR) as target:
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
