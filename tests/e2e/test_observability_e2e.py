"""Traces and metrics of the real stack (HAProxy ingress, as `make serve`).

The session stack writes every span to a JSON-lines file (conftest sets
sampling 1.0): one trace id must link the client's traceparent, Ray's replica
span, the family ingress span and the engine span of a `StreamText`, and all
child calls of a `Compose`. A real Prometheus, started here on the shipped
scrape config, must then hold non-zero `maestro_*` series.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import yaml

from maestro import MaestroClient
from maestro.tracing import traced_channel
from observability.metrics import METRICS, exported_names
from tests.helpers import ROOT, free_port
from tests.helpers.serve_run import ServeRun
from tests.helpers.spans import trace_spans

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCRAPE_WAIT_S = 120  # Ray reports metrics every few seconds; Prometheus scrapes
RULES_WAIT_S = 60  # a never-hang bound: rule groups evaluate every 15 s
DASHBOARD = ROOT / "observability" / "grafana" / "dashboards" / "maestro.json"


def _ancestors(span: dict[str, Any], spans: dict[str, dict[str, Any]]) -> list[str]:
    names = []
    while span.get("parent_span_id") in spans:
        span = spans[span["parent_span_id"]]
        names.append(span["name"])
    return names


def test_stream_text_is_one_trace_from_client_to_engine(stack: ServeRun) -> None:
    channel, traces = traced_channel(grpc.insecure_channel(stack.target))
    with MaestroClient(stack.target, timeout=60, channel=channel) as client:
        chunks = list(client.stream_text("Once upon a time", max_tokens=8))
    assert chunks[-1].finish_reason
    (traceparent,) = traces.started
    _, sent_trace_id, client_span_id, _ = traceparent.split("-")
    # The trace id comes back in trailing metadata: the client's own trace.
    assert traces.trace_ids == [sent_trace_id]

    replica_name = "replica_handle_request Text StreamText"
    spans = trace_spans(
        stack, sent_trace_id, {replica_name, "text.StreamText", "text.engine.stream"}
    )
    by_name = {s["name"]: s for s in spans.values()}
    replica = by_name[replica_name]
    ingress, engine = by_name["text.StreamText"], by_name["text.engine.stream"]
    assert replica["parent_span_id"] == client_span_id
    assert ingress["parent_span_id"] == replica["span_id"]
    assert engine["parent_span_id"] == ingress["span_id"]
    assert ingress["attributes"]["rpc.method"] == "StreamText"
    assert ingress["attributes"]["maestro.model"] == "maestro-demo-llm"
    assert ingress["attributes"]["maestro.request_id"]
    assert ingress["attributes"]["rpc.grpc.status"] == "OK"
    attrs = engine["attributes"]
    assert attrs["maestro.text.output_tokens"] == 8
    assert attrs["maestro.text.prompt_tokens"] > 0
    assert 0 < attrs["maestro.text.ttft_s"] < 30
    assert attrs["rpc.grpc.status"] == "OK"


def test_compose_is_one_trace_holding_every_child_call(
    stack: ServeRun, client: MaestroClient
) -> None:
    events = list(
        client.compose("a lighthouse keeper", num_scenes=2, seed=3, width=64, height=64)
    )
    done = events[-1].done
    assert done.scenes_succeeded == 2
    assert len(done.trace_id) == 32
    children = {"text.GenerateText", "image.GenerateImage", "voice.Synthesize"}
    spans = trace_spans(
        stack,
        done.trace_id,
        {"studio.Compose", "studio.plan", "text.engine.generate"}
        | children
        | {"image.engine.generate", "voice.engine.synthesize"},
        counts={"image.GenerateImage": 2, "voice.Synthesize": 2},
    )
    names = [s["name"] for s in spans.values()]
    assert names.count("image.GenerateImage") == 2
    assert names.count("voice.Synthesize") == 2
    for span in spans.values():
        if span["name"] in children:
            # Studio span -> stage span -> Ray's handle call -> family replica.
            path = _ancestors(span, spans)
            assert path[0].startswith("replica_handle_request"), path
            assert "studio.Compose" in path, path
    image = next(s for s in spans.values() if s["name"] == "image.engine.generate")
    assert image["attributes"]["maestro.image.size"] == "64x64"
    assert image["attributes"]["maestro.image.batch_size"] >= 1
    voice = next(s for s in spans.values() if s["name"] == "voice.engine.synthesize")
    assert voice["attributes"]["maestro.voice.segments"] >= 1
    assert voice["attributes"]["maestro.voice.audio_seconds"] > 0


def test_cli_prints_the_trace_id(stack: ServeRun) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "maestro.cli", "--target", stack.target, "--trace"]
        + ["text", "hello", "--max-tokens", "4", "--no-stream"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("trace_id: ")]
    trace_id = line.removeprefix("trace_id: ")
    trace_spans(stack, trace_id, {"text.GenerateText", "text.engine.generate"})


@pytest.fixture(scope="module")
def prometheus(
    stack: ServeRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Prometheus on the shipped scrape config, pointed at the session stack."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian package `prometheus` is not installed (.ci/run adds it)")
    workdir = tmp_path_factory.mktemp("prometheus")
    shipped = ROOT / "observability" / "prometheus"
    config = yaml.safe_load((shipped / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(shipped / "alerts.yml")]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{stack.metrics_port}"]}]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as reply:
        return json.load(reply)["data"]["result"]


def _names(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/api/v1/label/__name__/values") as reply:
        return set(json.load(reply)["data"])


def _dashboard_metrics() -> set[str]:
    import re

    names: set[str] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", ()):
            names |= set(re.findall(r"\b((?:maestro|ray)_[a-z_]+)", target["expr"]))
    return names


def test_prometheus_holds_maestro_series_after_traffic(
    prometheus: str, client: MaestroClient
) -> None:
    client.generate_text("hello", max_tokens=8)
    list(client.stream_text("hello", max_tokens=8))
    client.generate_image("a cat", width=64, height=64, steps=2, seed=1)
    list(client.stream_speech("Hello there. How are you?"))
    list(client.compose("a cat", num_scenes=1, seed=1, width=64, height=64))
    wanted = {
        "maestro_requests_total": 'sum(maestro_requests_total{code="OK"})',
        "maestro_request_latency_seconds_count": (
            "sum(maestro_request_latency_seconds_count)"
        ),
        "maestro_text_output_tokens_total": "sum(maestro_text_output_tokens_total)",
        "maestro_text_time_to_first_token_seconds_count": (
            "sum(maestro_text_time_to_first_token_seconds_count)"
        ),
        "maestro_image_images_total": "sum(maestro_image_images_total)",
        "maestro_image_denoising_steps_total": (
            "sum(maestro_image_denoising_steps_total)"
        ),
        "maestro_voice_audio_seconds_total": "sum(maestro_voice_audio_seconds_total)",
        "maestro_voice_time_to_first_chunk_seconds_count": (
            "sum(maestro_voice_time_to_first_chunk_seconds_count)"
        ),
        "maestro_studio_stage_latency_seconds_count": (
            "sum(maestro_studio_stage_latency_seconds_count)"
        ),
        "ray_serve_num_grpc_requests_total": "sum(ray_serve_num_grpc_requests_total)",
    }
    deadline = time.monotonic() + SCRAPE_WAIT_S
    missing = dict(wanted)
    while missing and time.monotonic() < deadline:
        for name, expr in list(missing.items()):
            result = _query(prometheus, expr)
            if result and float(result[0]["value"][1]) > 0:
                del missing[name]
        time.sleep(2)
    assert not missing, f"no non-zero series after {SCRAPE_WAIT_S} s: {missing}"
    # Renamed on scrape: the raw ray_maestro_* names are not stored.
    stored = _names(prometheus)
    assert not {n for n in stored if n.startswith("ray_maestro_")}
    # Every metric a dashboard panel queries exists, except those that only
    # appear after a failure: a failed scene, a refused key, a spent quota or
    # an unreachable quota store (this stack's demo key has no quota), and
    # the response cache's (off in the demo config; tests/serve covers it).
    only_on_failure = {
        name
        for metric in (
            "maestro_studio_scene_failures",
            "maestro_auth_failures",
            "maestro_quota_rejections",
            "maestro_quota_store_errors",
            *(m for m in METRICS if m.startswith("maestro_cache_")),
        )
        for name in exported_names(METRICS[metric])
    }
    absent = _dashboard_metrics() - stored - only_on_failure
    histogram_bases = {n.removesuffix("_bucket") for n in stored}
    assert not absent - histogram_bases, absent
    # Rules are "unknown" until their group's first evaluation (every 15 s).
    deadline = time.monotonic() + RULES_WAIT_S
    while True:
        with urllib.request.urlopen(f"{prometheus}/api/v1/rules") as reply:
            groups = json.load(reply)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        pending = [r for r in rules if r["health"] == "unknown"]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    health = {r["name"]: (r["health"], r.get("lastError", "")) for r in rules}
    assert len(rules) == 5, health
    assert all(state == "ok" for state, _ in health.values()), health
