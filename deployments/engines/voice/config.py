"""The voice engine's settings (`args.engine` of the voice application)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deployments.engines.base import EngineConfig
from deployments.engines.batching import BatchingConfig

__all__ = ["VOICE_FILE", "VoiceBatchingConfig", "VoiceEngineConfig"]

# Optional file beside a checkpoint naming its speakers in id order:
# {"voices": ["ava", "ben"]} (the demo builder writes one).
VOICE_FILE = "maestro_voice.json"


class VoiceBatchingConfig(BatchingConfig):
    """Batching for speech segments: a short wait, since the first chunk of a
    stream is latency-bound."""

    max_wait_ms: float = Field(
        2.0,
        ge=0,
        description="How long an idle worker waits for more segments before "
        "running a batch; 0 runs at once.",
    )


class VoiceEngineConfig(EngineConfig):
    """Engine settings, validated on start (a wrong key or value fails fast)."""

    model: str = Field(description="Local path or hub id of a VITS checkpoint.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda when available, else cpu."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "float32",
        description="Weights/activations dtype; auto: float16 on cuda, float32 on cpu.",
    )
    voices: tuple[str, ...] | None = Field(
        None,
        description="Speaker names in speaker-id order. Default: the checkpoint's "
        f"{VOICE_FILE}, else speaker_0.. (or `default` for one speaker).",
    )
    max_text_chars: int = Field(2000, ge=1, description="Longest accepted text.")
    max_segment_chars: int = Field(
        120,
        ge=8,
        description="Sentences longer than this are split at clauses, then words.",
    )
    min_speaking_rate: float = Field(0.5, gt=0, description="Slowest rate.")
    max_speaking_rate: float = Field(2.0, gt=0, description="Fastest rate.")
    pause_ms: int = Field(
        120, ge=0, le=2000, description="Silence after every segment but the last."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch; default: torch's own. Process-wide: "
        "torch.set_num_threads for the whole replica (every family in it).",
    )
    batching: VoiceBatchingConfig = Field(
        default_factory=VoiceBatchingConfig,
        description="How segments of concurrent requests share a model call.",
    )

    @model_validator(mode="after")
    def _rates_ordered(self) -> VoiceEngineConfig:
        if self.min_speaking_rate > self.max_speaking_rate:
            raise ValueError(
                f"min_speaking_rate {self.min_speaking_rate} > "
                f"max_speaking_rate {self.max_speaking_rate}"
            )
        return self
