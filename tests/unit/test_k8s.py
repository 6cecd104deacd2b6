"""k8s/ manifests are generated from the serve configs and never drift from them."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("gen_k8s", ROOT / "scripts/gen_k8s.py")
assert _spec and _spec.loader
gen_k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_k8s)


def test_manifests_match_the_serve_configs() -> None:
    assert gen_k8s.main(["--check"]) == 0, "run: python scripts/gen_k8s.py"


def test_check_fails_when_a_profile_changes(monkeypatch, capsys) -> None:
    render = gen_k8s.render

    def drifted(profile: str) -> str:
        return render(profile).replace("num_gpus: 0.4", "num_gpus: 0.5")

    monkeypatch.setattr(gen_k8s, "render", drifted)
    assert gen_k8s.main(["--check"]) == 1
    assert "k8s/rayservice.gpu.yaml" in capsys.readouterr().out


@pytest.mark.parametrize("profile", sorted(gen_k8s.TARGETS))
def test_manifest_is_a_rayservice_of_its_profile(profile: str) -> None:
    path, gpus, (low, high) = gen_k8s.TARGETS[profile]
    manifest = yaml.safe_load((ROOT / path).read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    serve_config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    source = yaml.safe_load((ROOT / profile).read_text())
    assert serve_config["applications"] == source["applications"]
    assert serve_config["grpc_options"] == source["grpc_options"]

    cluster = manifest["spec"]["rayClusterConfig"]
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["grpc"] == 9000 and ports["dashboard"] == 8265 and ports["metrics"]
    assert head["readinessProbe"]["exec"]["command"][0] == "maestro"
    assert head["resources"]["requests"]["cpu"]
    (group,) = cluster["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert (group["minReplicas"], group["maxReplicas"]) == (low, high)
    # Enough GPUs for every family's minimum replicas, and for their maxima.
    need_min = need_max = 0.0
    for app in source["applications"]:
        (deployment,) = app["deployments"]
        share = deployment["ray_actor_options"].get("num_gpus", 0)
        scaling = deployment["autoscaling_config"]
        need_min += share * scaling["min_replicas"]
        need_max += share * scaling["max_replicas"]
    assert need_min <= low * gpus and need_max <= high * gpus
