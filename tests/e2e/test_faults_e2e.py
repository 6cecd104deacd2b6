"""Faults on the real stack: a replica killed mid-stream, vLLM's engine core killed.

Processes are found by the titles Ray and vLLM give them, among those of
this stack only (never another stack on the machine), and killed with
SIGKILL, as an OOM killer or a lost node would. Each test waits until the
family is SERVING again, so the tests after it see a healthy stack.
"""

from __future__ import annotations

import time

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2

from maestro import MaestroClient, MaestroRpcError, envs
from maestro.models_client import default_models
from tests.helpers.serve_run import ServeRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LONG_SPEECH = " ".join(f"Sentence number {i} of a long story." for i in range(50))


def _stack_process(stack: ServeRun, title: str, family: str) -> psutil.Process:
    """The process titled `title` of this stack (not of any other on the
    machine: its environment carries this stack's own metrics port)."""
    with MaestroClient(stack.target, timeout=30) as client:
        client.wait_until_serving(300, [family])
    mine = str(stack.metrics_port)
    for proc in psutil.process_iter():
        try:
            if title not in " ".join(proc.cmdline()):
                continue
            if proc.environ().get(envs.MAESTRO_METRICS_EXPORT_PORT.name) == mine:
                return proc
        except psutil.Error:
            continue
    raise AssertionError(f"no process titled {title!r} in this stack")


def _recovers(client: MaestroClient, family: str, killed_at: float) -> float:
    client.wait_until_serving(300, [family])
    return time.monotonic() - killed_at


def test_a_replica_killed_mid_stream_is_a_retryable_unavailable(
    stack: ServeRun,
) -> None:
    replica = _stack_process(stack, "ServeReplica:voice:Voice", "voice")
    with MaestroClient(stack.target, timeout=120, retry=None) as client:
        stream = client.stream_speech(LONG_SPEECH)
        next(stream)  # the stream is live on that replica
        replica.kill()
        killed_at = time.monotonic()
        with pytest.raises(MaestroRpcError) as info:
            for _ in stream:
                pass
        assert time.monotonic() - killed_at < 30  # not a hang until the deadline
        # Not the client's own CANCELLED: a code it can act on (retry).
        assert info.value.code == grpc.StatusCode.UNAVAILABLE, info.value
        assert "Traceback" not in info.value.details
        recovered_s = _recovers(client, "voice", killed_at)
        assert client.synthesize("back again.").audio
    print(f"voice replica: kill -> SERVING in {recovered_s:.1f} s")


def test_a_dead_vllm_engine_core_says_so_and_the_replica_is_replaced(
    stack: ServeRun,
) -> None:
    core = _stack_process(stack, "VLLM::EngineCore", "text")
    with MaestroClient(stack.target, timeout=5, retry=None) as client:
        core.kill()
        killed_at = time.monotonic()
        codes: list[str] = []
        seen: list[str] = []
        status_messages: set[str] = set()
        while time.monotonic() - killed_at < 3:  # the dying replica answers
            step = "health"
            began = time.monotonic()
            try:
                if client.health("text") == NOT_SERVING:
                    step = "models"
                    (model,) = default_models(client.list_models(["text"]))
                    status_messages.add(model.status_message)
                step = "generate"
                client.generate_text("still there?", max_tokens=2)
                codes.append("OK")
            except MaestroRpcError as error:
                codes.append(error.code.name)
                seen.append(
                    f"{step} at {began - killed_at:.1f} s: {error.code.name} in "
                    f"{time.monotonic() - began:.2f} s ({error.details[:80]})"
                )
            time.sleep(0.2)
        # Meanwhile calls fail fast with UNAVAILABLE, never a deadline, and
        # ListModels tells the truth about the engine.
        assert codes and set(codes) <= {"UNAVAILABLE"}, seen
        assert any("stopped unexpectedly" in m for m in status_messages), (
            status_messages
        )
    with MaestroClient(stack.target, timeout=60) as client:
        recovered_s = _recovers(client, "text", killed_at)
        assert client.generate_text("hello", max_tokens=2).text is not None
    print(f"text engine core: kill -> SERVING in {recovered_s:.1f} s")


def test_a_family_replica_lost_during_compose_still_ends_with_done(
    stack: ServeRun,
) -> None:
    # Ray's handles resend a call whose replica died before answering, so the
    # scenes whose audio the dead replica held usually succeed on its
    # replacement; any that do not must be an UNAVAILABLE scene_error. Either
    # way every scene is accounted for and the Compose ends with `done`.
    replica = _stack_process(stack, "ServeReplica:voice:Voice", "voice")
    with MaestroClient(stack.target, timeout=180, retry=None) as client:
        client.wait_until_serving(300, ["studio"])
        # Frozen first, so the scenes' audio calls are surely held by this
        # replica when it dies (a fast synthesis could otherwise finish first).
        replica.suspend()
        events = []
        for event in client.compose(
            "a lighthouse keeper and a comet",
            num_scenes=8,
            seed=3,
            width=64,
            height=64,
            steps=1,
        ):
            events.append(event)
            if event.HasField("plan"):
                time.sleep(1.0)  # the studio hands the audio calls over
                replica.kill()
                killed_at = time.monotonic()
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[0] == "plan" and kinds[-1] == "done", kinds
        errors = [e.scene_error for e in events if e.HasField("scene_error")]
        assert {(e.stage, e.code) for e in errors} <= {("audio", "UNAVAILABLE")}
        audio = {e.scene_audio.scene for e in events if e.HasField("scene_audio")}
        assert audio | {e.scene for e in errors} == set(range(8))
        done = events[-1].done
        assert done.scenes_failed == len({e.scene for e in errors})
        assert done.scenes_succeeded + done.scenes_failed == 8
        recovered_s = _recovers(client, "voice", killed_at)
    print(
        f"voice replica lost in a Compose: {len(audio)} scenes' audio served "
        f"(resent), {len(errors)} scene_error(s), SERVING in {recovered_s:.1f} s"
    )
