"""serve_config.yaml as it is in the working tree, edited per run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from deployments.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = ROOT / "serve_config.yaml"
MODELS = ROOT / "models" / "demo"


def base_config() -> dict[str, Any]:
    """serve_config.yaml as it is in the working tree."""
    return dict(yaml.safe_load(SERVE_CONFIG.read_text()))


def app_config(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The application called `name` in `config`."""
    (app,) = [a for a in config["applications"] if a["name"] == name]
    return dict(app)


def only_apps(config: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """A copy of `config` holding only the applications in `names`."""
    config = copy.deepcopy(config)
    config["applications"] = [a for a in config["applications"] if a["name"] in names]
    return config


def on_free_ports(config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A copy of `config` with free gRPC and HTTP ports; and the gRPC port."""
    config = copy.deepcopy(config)
    port = free_port()
    config["grpc_options"]["port"] = port
    config.setdefault("http_options", {})["port"] = free_port()
    return config, port
