"""Generate the KubeRay RayService manifests in k8s/ from the serve configs.

    python scripts/gen_k8s.py          # write k8s/rayservice*.yaml
    python scripts/gen_k8s.py --check  # fail if the committed manifests differ

The serve config stays the one source of truth: each manifest's
`serveConfigV2` is its profile (serve_config.gpu*.yaml) with the two changes a
pod needs (listen on all interfaces; proxies on every node, since KubeRay's
serve Service selects the pods whose proxy is up), and the pods get the Ray
switches of `deployments.launch.RAY_SERVE_ENV`, which `serve run` would
otherwise set. Edit the profile or this script, never the manifest.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployments.launch import RAY_SERVE_ENV  # noqa: E402

# profile -> (manifest, GPUs per worker pod, worker pods min..max)
TARGETS = {
    "serve_config.gpu.yaml": ("k8s/rayservice.gpu.yaml", 1, (1, 1)),
    "serve_config.gpu-exclusive.yaml": ("k8s/rayservice.gpu-exclusive.yaml", 1, (3, 5)),
}
# Built FROM rayproject/ray:2.60.0-py311-gpu with `pip install .[serve,gpu]`
# (and haproxy, for RAY_SERVE_ENABLE_HA_PROXY); docs/scaling.md.
RAY_IMAGE = "maestro:0.1.0"
RAY_VERSION = "2.60.0"
METRICS_PORT = 8080
PORTS = [
    {"containerPort": 6379, "name": "gcs"},
    {"containerPort": 8265, "name": "dashboard"},
    {"containerPort": 10001, "name": "client"},
    {"containerPort": 8000, "name": "serve"},
    {"containerPort": 9000, "name": "grpc"},
    {"containerPort": METRICS_PORT, "name": "metrics"},
]
# Health of every application through Maestro's own client (the gRPC Health
# service, routed by the `application` key). A plain Kubernetes `grpc:` probe
# cannot send that key, so it would get Ray's NOT_FOUND.
HEALTH_PROBE = {
    "exec": {"command": ["maestro", "--timeout", "3", "health"]},
    "initialDelaySeconds": 30,
    "periodSeconds": 10,
    "timeoutSeconds": 15,
    "failureThreshold": 3,
}


class _Literal(str):
    """A string dumped as a YAML block (`|`), so serveConfigV2 stays readable."""


class _Dumper(yaml.SafeDumper):
    """Block strings for `_Literal`; no `&id001` anchors for repeated dicts."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


_Dumper.add_representer(_Literal, _literal)


def serve_config_v2(profile: dict[str, Any]) -> str:
    """The profile as KubeRay submits it to Ray's dashboard."""
    config = copy.deepcopy(profile)
    config["proxy_location"] = "EveryNode"
    config["http_options"] = {**config.get("http_options", {}), "host": "0.0.0.0"}
    return yaml.safe_dump(config, sort_keys=False, width=88)


def _env() -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(RAY_SERVE_ENV.items())]


def _container(name: str, resources: dict[str, Any], probe: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": RAY_IMAGE,
        "env": _env(),
        "resources": {"requests": resources, "limits": resources},
        "ports": PORTS
        if probe
        else [{"containerPort": METRICS_PORT, "name": "metrics"}],
    }
    if probe:
        container["readinessProbe"] = HEALTH_PROBE
    return container


def manifest(profile_name: str) -> dict[str, Any]:
    path, gpus, (low, high) = TARGETS[profile_name]
    profile = yaml.safe_load((ROOT / profile_name).read_text())
    worker = {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "maestro", "labels": {"app": "maestro"}},
        "spec": {
            "serveConfigV2": _Literal(serve_config_v2(profile)),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "headGroupSpec": {
                    # The head runs GCS, the Serve controller and a proxy;
                    # num-cpus 0 keeps every replica on the GPU workers.
                    "rayStartParams": {
                        "dashboard-host": "0.0.0.0",
                        "num-cpus": "0",
                        "metrics-export-port": str(METRICS_PORT),
                    },
                    "template": {
                        "spec": {
                            "containers": [
                                _container(
                                    "ray-head", {"cpu": "4", "memory": "16Gi"}, True
                                )
                            ]
                        }
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": low,
                        "minReplicas": low,
                        "maxReplicas": high,
                        "rayStartParams": {
                            "metrics-export-port": str(METRICS_PORT),
                        },
                        "template": {
                            "spec": {
                                "containers": [_container("ray-worker", worker, False)],
                                "tolerations": [
                                    {
                                        "key": "nvidia.com/gpu",
                                        "operator": "Exists",
                                        "effect": "NoSchedule",
                                    }
                                ],
                            }
                        },
                    }
                ],
            },
        },
    }


def render(profile_name: str) -> str:
    path = TARGETS[profile_name][0]
    header = (
        f"# Generated from {profile_name} by scripts/gen_k8s.py; do not edit.\n"
        f"#   kubectl apply -f {path}   (KubeRay operator >= 1.3 installed)\n"
        "# Ports: 9000 gRPC (Maestro), 8000 HTTP, 8265 dashboard, "
        f"{METRICS_PORT} metrics.\n"
    )
    body = yaml.dump(manifest(profile_name), Dumper=_Dumper, sort_keys=False, width=88)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    check = parser.parse_args(argv).check
    stale = []
    for profile_name, (path, _, _) in TARGETS.items():
        text, target = render(profile_name), ROOT / path
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(path)
        else:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("k8s manifests differ from the serve configs: " + ", ".join(stale))
        print("run: python scripts/gen_k8s.py")
        return 1
    if check:
        print(f"k8s manifests match the serve configs ({len(TARGETS)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
