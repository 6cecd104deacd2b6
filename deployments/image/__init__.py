"""The image family: ImageService on diffusers, application `image`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments import resolve_project_path
from deployments.engines.image.config import ImageEngineConfig
from deployments.image.config import ImageAppConfig
from deployments.image.deployment import ImageDeployment
from deployments.models_config import resolve_model_paths

__all__ = ["ImageDeployment", "build_app", "resolve_config"]


def resolve_config(args: dict[str, Any]) -> ImageAppConfig:
    """Validate `args`; anchor relative model and LoRA paths to the project."""
    return resolve_model_paths(ImageAppConfig.model_validate(args), _anchor)


def _anchor(engine: ImageEngineConfig) -> ImageEngineConfig:
    loras = tuple(
        lora.model_copy(update={"path": resolve_project_path(lora.path)})
        for lora in engine.loras
    )
    return engine.model_copy(
        update={"model": resolve_project_path(engine.model), "loras": loras}
    )


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for serve_config.yaml; validates `args` first."""
    return ImageDeployment.bind(resolve_config(args).model_dump())
