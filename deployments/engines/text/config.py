"""The text engine's settings (`args.engine` of the text application)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deployments.engines.adapters import AdapterConfig
from deployments.engines.base import EngineConfig

__all__ = ["TextEngineConfig"]


class TextEngineConfig(EngineConfig):
    """Engine settings, validated on start (a wrong key or value fails fast)."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Weights/activations dtype; float32 on CPU."
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Context window (prompt + output tokens)."
    )
    max_num_seqs: int = Field(
        128, ge=1, description="Most sequences vLLM batches in one step."
    )
    kv_cache_space_gib: int | None = Field(
        None, ge=1, description="CPU only: KV-cache GiB (VLLM_CPU_KVCACHE_SPACE)."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="GPU only: share of the GPU vLLM may take."
    )
    enforce_eager: bool = Field(False, description="Skip CUDA graph capture.")
    structured_output_backend: Literal["auto", "xgrammar", "guidance", "outlines"] = (
        Field(
            "guidance",
            description="Guided-decoding backend for json_schema/regex/choices. "
            "guidance (llguidance) keeps JSON strings free of raw control "
            "characters, so outputs parse with strict JSON parsers.",
        )
    )
    seed: int = Field(0, description="Engine seed (requests may set their own).")
    default_max_tokens: int = Field(
        256, ge=1, description="max_tokens when a request leaves it unset."
    )
    max_loras: int = Field(
        0,
        ge=0,
        description="LoRA adapters one engine step may mix (vLLM's max_loras); "
        "0 turns LoRA off. On CPU, LoRA also turns vLLM's torch.compile off.",
    )
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256] = Field(
        16, description="Largest adapter rank the engine accepts."
    )
    sleep_mode: bool = Field(
        False,
        description="GPU only: when the registry evicts this model it sleeps "
        "(vLLM's sleep mode: weights to CPU RAM, KV cache freed) instead of "
        "stopping, and wakes for its next request, faster than a new start. "
        "vLLM 0.32 sleeps on CUDA, ROCm and XPU only; on CPU the engine "
        "refuses to start with it.",
    )
    loras: tuple[AdapterConfig, ...] = Field(
        (), description="Adapters loaded at start (needs max_loras >= 1)."
    )

    @model_validator(mode="after")
    def _loras_need_slots(self) -> TextEngineConfig:
        if self.loras and not self.max_loras:
            raise ValueError("loras need max_loras >= 1 (LoRA is off at 0)")
        return self
