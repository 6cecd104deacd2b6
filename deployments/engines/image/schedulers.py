"""The schedulers requests can name, and which of them suit a checkpoint.

Each is built from the checkpoint's own scheduler config, so betas,
prediction type and flow shift stay the model's. Which names a model accepts
follows diffusers' compatibility lists (`SchedulerMixin._compatibles`): UNet
checkpoints (SD, SDXL) ship one of the Karras-family discrete schedulers and
accept all of `SCHEDULERS`; flow-matching checkpoints (Stable Diffusion 3)
accept only `FLOW_MATCH_SCHEDULERS`, since a discrete scheduler's noise
levels mean nothing to a model trained on a flow.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ALL_SCHEDULERS",
    "FLOW_MATCH_SCHEDULERS",
    "SCHEDULERS",
    "build_scheduler",
    "checkpoint_default",
    "compatible_schedulers",
]

# name -> (diffusers scheduler class, overrides of the checkpoint's config).
# Discrete (Karras-family) schedulers for UNet checkpoints. (LMS needs scipy,
# so it is not offered.)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}
# Flow-matching checkpoints (SD3): compatible with nothing above.
FLOW_MATCH_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "flow_match_euler": ("FlowMatchEulerDiscreteScheduler", {}),
}
ALL_SCHEDULERS = {**SCHEDULERS, **FLOW_MATCH_SCHEDULERS}


def compatible_schedulers(checkpoint: Any) -> tuple[str, ...]:
    """Names (table order) that can replace the checkpoint's scheduler."""
    suits = {type(checkpoint).__name__, *getattr(checkpoint, "_compatibles", ())}
    return tuple(name for name, (cls, _) in ALL_SCHEDULERS.items() if cls in suits)


def checkpoint_default(checkpoint: Any, allowed: tuple[str, ...]) -> str:
    """The name that rebuilds the checkpoint's own scheduler (first match,
    so the one without overrides); else the first allowed name."""
    own = type(checkpoint).__name__
    for name in allowed:
        if ALL_SCHEDULERS[name][0] == own:
            return name
    return allowed[0]


def build_scheduler(name: str, checkpoint_config: Any) -> Any:
    """A fresh scheduler: they keep per-run state (step index, history)."""
    import diffusers

    cls_name, overrides = ALL_SCHEDULERS[name]
    return getattr(diffusers, cls_name).from_config(checkpoint_config, **overrides)
