"""Arguments of the text application (the `args:` block in serve_config.yaml)."""

from __future__ import annotations

from pydantic import Field

from deployments.engines.text.config import TextEngineConfig
from deployments.models_config import ModelsConfig
from deployments.streaming import StreamPacingConfig

__all__ = ["TextAppConfig"]


class TextAppConfig(ModelsConfig[TextEngineConfig]):
    """Validated when the application is built: unknown keys fail fast."""

    stream: StreamPacingConfig = Field(
        default_factory=StreamPacingConfig,
        description="How StreamText coalesces tokens into messages under load.",
    )
