"""The shipped Prometheus and Grafana files: valid, and about metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from observability.metrics import METRICS, exported_names
from tests.helpers import ROOT

OBS = ROOT / "observability"
PROMETHEUS = OBS / "prometheus"
GRAFANA = OBS / "grafana"
# Ray Serve's own series the files query (the e2e test checks that a live
# Prometheus holds each of them).
RAY_METRICS = {
    "ray_serve_num_grpc_requests_total",
    "ray_serve_deployment_queued_queries",
    "ray_serve_num_ongoing_requests_at_replicas",
}
MAESTRO_SERIES = {name for m in METRICS.values() for name in exported_names(m)}
METRIC_NAME = re.compile(r"\b((?:maestro|ray)_[a-z_]+)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package `prometheus`) is not installed")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_scrape_config() -> None:
    done = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    done = _promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_scrape_config_targets_the_configured_port_and_renames() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    serve = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = serve["observability"]["metrics_export_port"]
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
    (rename,) = job["metric_relabel_configs"]
    assert re.fullmatch(rename["regex"], "ray_maestro_requests_total")


def _exprs() -> list[str]:
    dashboard = json.loads((GRAFANA / "dashboards" / "maestro.json").read_text())
    exprs = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "maestro-prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        exprs += [t["expr"] for t in panel["targets"]]
    return exprs


def test_every_dashboard_query_names_a_metric_that_exists() -> None:
    seen = set()
    for expr in _exprs():
        names = set(METRIC_NAME.findall(expr))
        assert names, expr
        unknown = names - MAESTRO_SERIES - RAY_METRICS
        assert not unknown, f"{expr}: {unknown}"
        seen |= names
    # Every Maestro metric has a panel.
    undrawn = {m.name for m in METRICS.values()} - {
        n.removesuffix(suffix)
        for n in seen
        for suffix in ("_total", "_bucket", "")
        if n.removesuffix(suffix) in METRICS
    }
    assert not undrawn


def test_alert_rules_query_metrics_that_exist() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert {"MaestroHighErrorRate", "MaestroHighP99Latency", "MaestroQueueGrowing"} <= {
        r["alert"] for g in rules["groups"] for r in g["rules"]
    }
    for expr in exprs:
        names = set(METRIC_NAME.findall(expr))
        assert names and not names - MAESTRO_SERIES - RAY_METRICS, expr


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "maestro.yml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == "maestro-prometheus"
    assert source["type"] == "prometheus"
    providers = yaml.safe_load(
        (provisioning / "dashboards" / "maestro.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
