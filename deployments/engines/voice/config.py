"""The voice engine's settings (`args.engine` of the voice application)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.engines.base import EngineConfig
from deployments.engines.batching import BatchingConfig

__all__ = [
    "SPEAKER_FILE",
    "VOICE_FILE",
    "SpeechT5Settings",
    "VoiceBatchingConfig",
    "VoiceEngineConfig",
]

# Optional file beside a checkpoint naming its speakers in id order:
# {"voices": ["ava", "ben"]} (the demo builder writes one).
VOICE_FILE = "maestro_voice.json"
# SpeechT5 voices are x-vectors: a safetensors file beside the checkpoint with
# one speaker_embedding_dim tensor per voice name (the demo builder writes one).
SPEAKER_FILE = "speaker_embeddings.safetensors"


class VoiceBatchingConfig(BatchingConfig):
    """Batching for speech segments: a short wait, since the first chunk of a
    stream is latency-bound."""

    max_wait_ms: float = Field(
        2.0,
        ge=0,
        description="How long an idle worker waits for more segments before "
        "running a batch; 0 runs at once.",
    )


class SpeechT5Settings(BaseModel):
    """What only a SpeechT5 checkpoint uses (VITS ignores it): where its
    vocoder and voices are, and when its autoregressive decoder stops."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocoder: str | None = Field(
        None,
        description="Path or hub id of the SpeechT5HifiGan vocoder; default: "
        "the checkpoint's vocoder/ folder.",
    )
    speakers: str | None = Field(
        None,
        description=f"Safetensors file of x-vectors by voice name; default: the "
        f"checkpoint's {SPEAKER_FILE}.",
    )
    stop_threshold: float = Field(
        0.5,
        gt=0,
        description="A segment ends when its stop probabilities (summed over "
        "the frames of a step) reach this.",
    )
    min_len_ratio: float = Field(
        0.0, ge=0, description="Fewest mel frames per input token."
    )
    max_len_ratio: float = Field(
        20.0,
        gt=0,
        description="Most mel frames per input token: a decoder that never "
        "fires its stop head (random weights) still ends.",
    )
    max_segment_seconds: float = Field(
        30.0, gt=0, description="Hard cap on one segment's audio."
    )

    @model_validator(mode="after")
    def _ratios_ordered(self) -> SpeechT5Settings:
        if self.min_len_ratio > self.max_len_ratio:
            raise ValueError(
                f"min_len_ratio {self.min_len_ratio} > "
                f"max_len_ratio {self.max_len_ratio}"
            )
        return self


class VoiceEngineConfig(EngineConfig):
    """Engine settings, validated on start (a wrong key or value fails fast)."""

    model: str = Field(
        description="Local path or hub id of a VITS or SpeechT5 checkpoint "
        "(its config's model_type picks the backend)."
    )
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
    min_speaking_rate: float = Field(
        0.5, gt=0, description="Slowest rate (SpeechT5: only 1.0 is served)."
    )
    max_speaking_rate: float = Field(
        2.0, gt=0, description="Fastest rate (SpeechT5: only 1.0 is served)."
    )
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
    speecht5: SpeechT5Settings = Field(
        default_factory=SpeechT5Settings,
        description="Vocoder, voices and stopping of a SpeechT5 checkpoint.",
    )

    @model_validator(mode="after")
    def _rates_ordered(self) -> VoiceEngineConfig:
        if self.min_speaking_rate > self.max_speaking_rate:
            raise ValueError(
                f"min_speaking_rate {self.min_speaking_rate} > "
                f"max_speaking_rate {self.max_speaking_rate}"
            )
        return self
