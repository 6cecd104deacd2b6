"""Arguments of the text application (the `args:` block in serve_config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from deployments.engines.text.config import TextEngineConfig
from deployments.streaming import StreamPacingConfig

__all__ = ["TextAppConfig"]


class TextAppConfig(BaseModel):
    """Validated when the application is built: unknown keys fail fast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: TextEngineConfig = Field(description="vLLM engine settings.")
    stream: StreamPacingConfig = Field(
        default_factory=StreamPacingConfig,
        description="How StreamText coalesces tokens into messages under load.",
    )
