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
from tests.conftest import ROOT

CONFIGS = sorted(ROOT.glob("serve_config*.yaml"))
ARGS_MODELS = {
    "deployments.text:build_app": TextAppConfig,
    "deployments.image:build_app": ImageAppConfig,
    "deployments.studio:build_app": StudioAppConfig,
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
