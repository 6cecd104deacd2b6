"""The voice family: VoiceService on transformers VITS, application `voice`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.models_config import resolve_model_paths
from deployments.voice.config import VoiceAppConfig
from deployments.voice.deployment import VoiceDeployment

__all__ = ["VoiceDeployment", "build_app", "resolve_config"]


def resolve_config(args: dict[str, Any]) -> VoiceAppConfig:
    """Validate `args` and anchor a relative model path to the project."""
    return resolve_model_paths(VoiceAppConfig.model_validate(args))


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for serve_config.yaml; validates `args` first."""
    return VoiceDeployment.bind(resolve_config(args).model_dump())
