"""The voice family: VoiceService on transformers VITS, application `voice`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments import resolve_project_path
from deployments.voice.config import VoiceAppConfig
from deployments.voice.deployment import VoiceDeployment

__all__ = ["VoiceDeployment", "build_app", "resolve_config"]


def resolve_config(args: dict[str, Any]) -> VoiceAppConfig:
    """Validate `args` and anchor a relative model path to the project."""
    config = VoiceAppConfig.model_validate(args)
    engine = config.engine.model_copy(
        update={"model": resolve_project_path(config.engine.model)}
    )
    return config.model_copy(update={"engine": engine})


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for serve_config.yaml; validates `args` first."""
    return VoiceDeployment.bind(resolve_config(args).model_dump())
