"""The text family: TextService on vLLM, application `text`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments import resolve_project_path
from deployments.text.config import TextAppConfig
from deployments.text.deployment import TextDeployment

__all__ = ["TextDeployment", "build_app"]


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for serve_config.yaml; validates `args` first."""
    config = TextAppConfig.model_validate(args)
    engine = config.engine.model_copy(
        update={"model": resolve_project_path(config.engine.model)}
    )
    return TextDeployment.bind(
        config.model_copy(update={"engine": engine}).model_dump()
    )
