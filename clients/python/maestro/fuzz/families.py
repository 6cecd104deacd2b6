"""The families afterwards: each SERVING, and one good request answered."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from maestro import auth
from maestro.fuzz.results import FamilyCheck
from maestro.routing import FAMILIES


def _good_request(client: Any, family: str) -> None:
    if family == "text":
        client.generate_text("hi", max_tokens=2, seed=1)
    elif family == "image":
        client.generate_image("x", width=64, height=64, steps=1, seed=1)
    elif family == "voice":
        client.synthesize("hi", seed=1)
    elif family == "studio":
        events = list(
            client.compose("a cat", num_scenes=1, seed=1, width=64, height=64, steps=1)
        )
        if not events or not events[-1].HasField("done"):
            raise RuntimeError(f"Compose ended without done after {len(events)} events")
    else:  # pragma: no cover - FAMILIES has no other
        raise ValueError(family)


def check_families(
    target: str,
    api_key: str | None = None,
    families: Sequence[str] = FAMILIES,
    settle_s: float = 90.0,
    timeout_s: float = 120.0,
) -> list[FamilyCheck]:
    """Each family SERVING (waiting up to `settle_s`) and one good request answered."""
    from grpc_health.v1 import health_pb2

    from maestro.client import MaestroClient

    checks = []
    key = auth.default_api_key() if api_key is None else api_key
    with MaestroClient(target, timeout=timeout_s, api_key=key or "") as client:
        for family in families:
            deadline = time.monotonic() + settle_s
            status = "UNKNOWN"
            while True:
                try:
                    number = client.health(family)
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(number)
                except Exception as exc:
                    status = f"error: {exc}"
                if status == "SERVING" or time.monotonic() > deadline:
                    break
                time.sleep(2)
            check = FamilyCheck(family, status == "SERVING", status, answered=False)
            try:
                _good_request(client, family)
                check.answered = True
            except Exception as exc:
                check.detail = f"{type(exc).__name__}: {exc}"[:300]
            checks.append(check)
    return checks
