"""Every serve config in the repo is valid for Ray and for Maestro's app args."""

from __future__ import annotations

import importlib

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from deployments.image.config import ImageAppConfig
from deployments.studio.config import StudioAppConfig
from deployments.text.config import TextAppConfig
from deployments.voice.config import VoiceAppConfig
from tests.helpers import ROOT

CONFIGS = sorted(ROOT.glob("serve_config*.yaml"))
ARGS_MODELS = {
    "deployments.text:build_app": TextAppConfig,
    "deployments.image:build_app": ImageAppConfig,
    "deployments.studio:build_app": StudioAppConfig,
    "deployments.voice:build_app": VoiceAppConfig,
}
ENGINE_APPS = ("text", "image", "voice")
AUTOSCALING_KNOBS = {
    "min_replicas",
    "max_replicas",
    "target_ongoing_requests",
    "upscale_delay_s",
    "downscale_delay_s",
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid(path) -> None:
    raw = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    assert schema.grpc_options.port == 9000
    for servicer in raw["grpc_options"]["grpc_servicer_functions"]:
        module, name = servicer.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name))
    names = {app.name for app in schema.applications}
    assert names == {"text", "image", "voice", "studio"}
    for app in schema.applications:
        module, builder = app.import_path.split(":")
        assert callable(getattr(importlib.import_module(module), builder))
        if app.import_path in ARGS_MODELS:
            ARGS_MODELS[app.import_path].model_validate(app.args)


def _text_args() -> dict:
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    (text,) = [a for a in raw["applications"] if a["name"] == "text"]
    return text["args"]


def test_unknown_engine_key_fails_fast_naming_it() -> None:
    args = _text_args()
    args["engine"]["max_model_length"] = 4096
    with pytest.raises(ValidationError, match="max_model_length"):
        TextAppConfig.model_validate(args)


def test_bad_engine_value_fails_fast_naming_it() -> None:
    args = _text_args()
    args["engine"]["dtype"] = "float8"
    with pytest.raises(ValidationError, match="engine.dtype"):
        TextAppConfig.model_validate(args)


def test_builder_validates_before_deploying() -> None:
    from deployments.text import build_app

    with pytest.raises(ValidationError, match="stream.messages_per_second"):
        build_app({**_text_args(), "stream": {"messages_per_second": 0}})


def _apps(name: str) -> dict[str, dict]:
    raw = yaml.safe_load((ROOT / name).read_text())
    return {app["name"]: app for app in raw["applications"]}


def _shape(app: dict) -> tuple[float, dict]:
    (deployment,) = app["deployments"]
    return (
        deployment["ray_actor_options"].get("num_gpus", 0),
        deployment["autoscaling_config"],
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_deployment_sets_the_autoscaling_knobs(path) -> None:
    for name, app in _apps(path.name).items():
        _, scaling = _shape(app)
        assert AUTOSCALING_KNOBS <= set(scaling), (name, scaling)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_profiles_use_the_cpu_default_builders(path) -> None:
    default = _apps("serve_config.yaml")
    assert {n: a["import_path"] for n, a in _apps(path.name).items()} == {
        n: a["import_path"] for n, a in default.items()
    }


def test_shared_gpu_profile_fits_one_gpu_with_vllm_inside_its_share() -> None:
    apps = _apps("serve_config.gpu.yaml")
    total = 0.0
    for name in ENGINE_APPS:
        share, scaling = _shape(apps[name])
        assert 0 < share < 1, f"{name} shares the card: fractional num_gpus"
        total += share * scaling["max_replicas"]
    assert _shape(apps["studio"])[0] == 0
    assert total <= 1.0, f"shares at max_replicas add up to {total}"
    text_share, _ = _shape(apps["text"])
    utilization = apps["text"]["args"]["engine"]["gpu_memory_utilization"]
    assert utilization <= text_share, "vLLM's share of the card > its Ray share"


def test_exclusive_gpu_profile_gives_each_family_whole_gpus() -> None:
    apps = _apps("serve_config.gpu-exclusive.yaml")
    for name in ENGINE_APPS:
        share, _ = _shape(apps[name])
        assert share >= 1 and float(share).is_integer(), (name, share)
    assert _shape(apps["studio"])[0] == 0
    assert apps["text"]["args"]["engine"]["gpu_memory_utilization"] <= 0.95
    # Same models as the shared profile: only resources and memory differ.
    shared = _apps("serve_config.gpu.yaml")
    for name in ENGINE_APPS:
        model = apps[name]["args"]["engine"]["model"]
        assert model == shared[name]["args"]["engine"]["model"]
