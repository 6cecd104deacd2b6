"""Arguments of the image application (the `args:` block in serve_config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from deployments.engines.image.config import ImageEngineConfig

__all__ = ["ImageAppConfig"]


class ImageAppConfig(BaseModel):
    """Validated when the application is built: unknown keys fail fast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: ImageEngineConfig = Field(
        description="diffusers pipeline, adapters, limits, batching and memory."
    )
