"""Arguments of the voice application (the `args:` block in serve_config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from deployments.engines.voice.config import VoiceEngineConfig

__all__ = ["VoiceAppConfig"]


class VoiceAppConfig(BaseModel):
    """Validated when the application is built: unknown keys fail fast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: VoiceEngineConfig = Field(
        description="VITS checkpoint, device, request limits and batching."
    )
