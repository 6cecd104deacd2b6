"""The text family: TextService on vLLM, application `text`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.models_config import resolve_model_paths
from deployments.text.config import TextAppConfig
from deployments.text.deployment import TextDeployment

__all__ = ["TextDeployment", "build_app", "resolve_config"]


def resolve_config(args: dict[str, Any]) -> TextAppConfig:
    """Validate `args` and anchor a relative model path to the project."""
    return resolve_model_paths(TextAppConfig.model_validate(args))


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for serve_config.yaml; validates `args` first."""
    return TextDeployment.bind(resolve_config(args).model_dump())
