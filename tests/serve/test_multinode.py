"""Serve tier: a three-node Ray cluster on this machine loses a worker mid-traffic.

`ray.cluster_utils.Cluster` starts a head (the Serve controller and the gRPC
proxy, no GPU) and two worker nodes with one *logical* GPU each. The voice
family, with the exclusive profile's shape (`num_gpus: 1`) and two replicas,
can only be placed one replica per worker: Ray spreads it by resources (the
demo checkpoint runs on the CPU). Then one worker is removed while seeded
Synthesize calls are in flight; a replacement node joins, as a KubeRay worker
pod would, and the controller reschedules the lost replica there. Every call
ends in time, either answered or with UNAVAILABLE after the client's retries.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import Counter

import grpc
import pytest
import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.serve.config import gRPCOptions

from maestro import MaestroClient, MaestroRpcError, RetryPolicy
from maestro.models_client import default_models
from tests.helpers import free_port, wait_for
from tests.helpers.serve_stack import (
    FAST_WARNINGS,
    demo_profile,
    deploy,
    replica_counts,
)

pytestmark = pytest.mark.slow

CALL_TIMEOUT_S = 20
RETRY = RetryPolicy(attempts=8, initial_backoff_s=0.2, max_backoff_s=2.0)
TEXT = "The lamp turns. The ships pass by in the night."


def _voice_app() -> dict:
    (voice,) = demo_profile("serve_config.gpu-exclusive.yaml", ["voice"])
    (deployment,) = voice["deployments"]
    del deployment["autoscaling_config"]
    deployment["num_replicas"] = 2
    deployment["health_check_period_s"] = 2  # notice the lost replica sooner
    return voice


def _replica_nodes(client: MaestroClient, tries: int = 40) -> set[str]:
    """Node ids the voice replicas report (calls land on replicas at random)."""
    nodes = set()
    for _ in range(tries):
        (model,) = default_models(client.list_models(["voice"]))
        nodes.add(model.stats["node_id"])
    return nodes


def test_losing_a_worker_node_mid_traffic(demo_models) -> None:
    # Cluster writes its address to $RAY_TMPDIR/ray/ray_current_cluster, where
    # any `ray.init()` / `serve run` on the machine without an address would
    # find and join it: keep it in a directory of this test's own.
    env = {**FAST_WARNINGS, "RAY_TMPDIR": tempfile.mkdtemp(prefix="mn", dir="/tmp")}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "num_gpus": 0, "include_dashboard": False},
    )
    try:
        first = cluster.add_node(num_cpus=2, num_gpus=1)
        second = cluster.add_node(num_cpus=2, num_gpus=1)
        cluster.connect()
        port = free_port()
        serve.start(
            proxy_location="HeadOnly",
            http_options={"host": "127.0.0.1", "port": free_port()},
            grpc_options=gRPCOptions(
                port=port,
                grpc_servicer_functions=[
                    "maestro.v1.voice_pb2_grpc.add_VoiceServiceServicer_to_server",
                    "maestro.v1.models_pb2_grpc.add_ModelServiceServicer_to_server",
                    "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server",
                ],
            ),
        )
        target = f"127.0.0.1:{port}"
        deploy([_voice_app()])
        with MaestroClient(target, timeout=10, retry=RETRY) as client:
            wait_for(
                lambda: replica_counts("voice") == {"RUNNING": 2}, 120, "2 replicas"
            )
            nodes = _replica_nodes(client)
            assert nodes == {first.node_id[:12], second.node_id[:12]}, nodes

        outcomes: Counter[str] = Counter()
        durations: list[float] = []
        failures: list[MaestroRpcError] = []
        stop = threading.Event()

        def caller(client: MaestroClient, index: int) -> None:
            seed = 0
            while not stop.is_set():
                seed += 1
                began = time.monotonic()
                try:
                    reply = client.synthesize(TEXT, seed=index * 1000 + seed)
                    outcomes["OK" if reply.audio else "EMPTY"] += 1
                except MaestroRpcError as error:
                    outcomes[error.code.name] += 1
                    failures.append(error)
                durations.append(time.monotonic() - began)

        with MaestroClient(target, timeout=CALL_TIMEOUT_S, retry=RETRY) as client:
            callers = [
                threading.Thread(target=caller, args=(client, i)) for i in range(4)
            ]
            for thread in callers:
                thread.start()
            try:
                wait_for(lambda: outcomes["OK"] >= 8, 60, "traffic")
                cluster.remove_node(first)  # its replica dies mid-request
                ok_at_loss = outcomes["OK"]
                wait_for(lambda: outcomes["OK"] >= ok_at_loss + 8, 60, "the survivor")
                # The controller notices at its next health check of the lost
                # replica; its replacement waits for a GPU (no node has one
                # free) until a node joins, as a KubeRay worker pod would.
                wait_for(lambda: replica_counts("voice") != {"RUNNING": 2}, 60, "loss")
                third = cluster.add_node(num_cpus=2, num_gpus=1)
                wait_for(
                    lambda: replica_counts("voice") == {"RUNNING": 2}, 120, "reschedule"
                )
                ok_after = outcomes["OK"]
                wait_for(lambda: outcomes["OK"] >= ok_after + 8, 60, "recovery")
            finally:
                stop.set()
                for thread in callers:
                    thread.join(CALL_TIMEOUT_S + 5)
            assert not any(thread.is_alive() for thread in callers), "a call hung"

        with MaestroClient(target, timeout=10, retry=RETRY) as client:
            assert _replica_nodes(client) == {second.node_id[:12], third.node_id[:12]}
        retryable = {"OK", grpc.StatusCode.UNAVAILABLE.name}
        assert set(outcomes) <= retryable, (outcomes, failures[:3])
        # A never-hang bound (no call outlives its deadline by much), not a timing.
        assert max(durations) < CALL_TIMEOUT_S + 5  # never-hang bound
        print(f"outcomes {dict(outcomes)}, slowest call {max(durations):.1f} s")
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
