"""Arguments of the voice application (the `args:` block in serve_config.yaml)."""

from __future__ import annotations

from deployments.engines.voice.config import VoiceEngineConfig
from deployments.models_config import ModelsConfig

__all__ = ["VoiceAppConfig"]


class VoiceAppConfig(ModelsConfig[VoiceEngineConfig]):
    """Validated when the application is built: unknown keys fail fast."""
