"""Arguments of the image application (the `args:` block in serve_config.yaml)."""

from __future__ import annotations

from deployments.engines.image.config import ImageEngineConfig
from deployments.models_config import ModelsConfig

__all__ = ["ImageAppConfig"]


class ImageAppConfig(ModelsConfig[ImageEngineConfig]):
    """Validated when the application is built: unknown keys fail fast."""
