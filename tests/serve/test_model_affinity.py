"""Model affinity on the HAProxy ingress: the calls naming a model go to one
replica, the one that loaded it (deployments/routing.py).

The voice application alone, with two replicas and its two demo models. The
client sets `multiplexed_model_id` from each call's `model`; the launcher has
HAProxy balance on that header. Without it (Ray's default `leastconn`), calls
one after another tie at zero connections and alternate, so both replicas
would load the second model. Calls without a model (the default) still
spread over both replicas: the control.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from maestro import MaestroClient
from tests.helpers.serve_run import serve_run

pytestmark = pytest.mark.slow

SOLO = "maestro-demo-tts-solo"
DEFAULT = "maestro-demo-tts"
CALLS = 12
STRAYS = 2  # calls HAProxy may redispatch to the other replica


def _two_voice_replicas(config: dict[str, Any]) -> None:
    config["applications"] = [a for a in config["applications"] if a["name"] == "voice"]
    (deployment,) = config["applications"][0]["deployments"]
    deployment.pop("autoscaling_config", None)
    deployment["num_replicas"] = 2


def _by_replica(client: MaestroClient) -> dict[str, dict[str, dict[str, str]]]:
    """replica -> model id -> stats; ListModels (no model named) goes round
    robin, so a few calls see both replicas."""
    seen: dict[str, dict[str, dict[str, str]]] = {}
    deadline = time.monotonic() + 60  # a never-hang bound, not a timing
    while len(seen) < 2 and time.monotonic() < deadline:
        rows = client.list_models(["voice"])
        seen[rows[0].stats["replica"]] = {m.id: dict(m.stats) for m in rows}
    return seen


def test_calls_for_a_model_stick_to_one_replica(
    demo_models: Path, tmp_path: Path
) -> None:
    with (
        serve_run(tmp_path, families=["voice"], edit=_two_voice_replicas) as run,
        MaestroClient(run.target, timeout=60) as client,
    ):
        assert len(_by_replica(client)) == 2
        for _ in range(CALLS):
            assert client.synthesize("Hello there.", model=SOLO).model == SOLO
            assert client.synthesize("Hello there.").model == DEFAULT
        replicas = _by_replica(client)
    assert len(replicas) == 2

    def served(model: str) -> list[int]:  # one segment per call, per replica
        return sorted(
            int(models[model].get("segments_synthesized", 0))
            for models in replicas.values()
        )

    # All on one replica. HAProxy may send a stray call elsewhere (a reused
    # connection that fails is retried on another server, `option
    # redispatch`), so one or two of them may land on the other replica;
    # without the hash (leastconn) they alternate, CALLS / 2 each.
    solo = served(SOLO)
    assert solo[-1] >= CALLS - STRAYS and sum(solo) == CALLS, replicas
    # The control: calls without a model went to both replicas.
    assert min(served(DEFAULT)) > 0, replicas
