"""Removing rows from a diffusers batch between two denoising steps.

A batch is one pipeline call; each image is a row. When a request is
cancelled its rows are cut out at the next step-end callback, so every later
UNet call runs on fewer rows. That is safe only where every batch-shaped value
the loop carries is known, so both tables below are explicit, read from the
diffusers 0.42 sources, and anything not in them keeps all its rows
(`row_tensors` returns None and the caller masks instead):

* the pipeline's loop tensors, handed back through `callback_on_step_end`
  (with classifier-free guidance the conditioning is `[negative; positive]`,
  two blocks of one row per image);
* the scheduler's history between steps (multistep solvers keep past model
  outputs, Heun keeps the first half of its step, PNDM its past epsilons);
* the per-row `torch.Generator` list: the pipeline holds the very list object
  it was given (`prepare_extra_step_kwargs`), and `randn_tensor` draws row i
  from `generator[i]`, so deleting entries in place keeps each row's noise.

Not sliced, so masked instead: pipelines outside the table (their loops are
unread), UNets with a guidance embedding (`time_cond_proj_dim`: the
`timestep_cond` tensor is batch-shaped and not a callback input), and
schedulers outside the table. Stable Diffusion 3 (a transformer backbone) is
outside the table on purpose: its image-to-image loop carries the pooled
conditioning without offering it to the callback, so that could not be cut;
its cancelled rows are masked (a batch all cancelled is still interrupted).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PIPELINE_TENSORS", "SCHEDULER_STATE", "drop_rows", "row_tensors"]

# How a loop tensor's rows map to images (n rows in the batch):
#   "rows"     n rows, row i is image i (the latents);
#   "guided"   [negative; positive] blocks of n rows with classifier-free
#              guidance, else n rows;
#   "repeated" one identical (pair of) row(s) repeated n times: SDXL text-to-
#              image builds add_time_ids as `cat([neg, pos]).repeat(n, 1)`,
#              so the first rows are what it builds for a smaller batch.
_SD = {"latents": "rows", "prompt_embeds": "guided"}
_SDXL = {**_SD, "add_text_embeds": "guided"}
PIPELINE_TENSORS: dict[str, dict[str, str]] = {
    "StableDiffusionPipeline": _SD,
    "StableDiffusionImg2ImgPipeline": _SD,
    "StableDiffusionXLPipeline": {**_SDXL, "add_time_ids": "repeated"},
    "StableDiffusionXLImg2ImgPipeline": {**_SDXL, "add_time_ids": "guided"},
}

# Scheduler class -> attributes holding one row per image between steps: a
# tensor, or a list of tensors (None or a number where unused yet).
SCHEDULER_STATE: dict[str, tuple[str, ...]] = {
    "EulerDiscreteScheduler": (),
    "EulerAncestralDiscreteScheduler": (),  # noise from the generator list
    "DDIMScheduler": (),
    "DPMSolverMultistepScheduler": ("model_outputs",),
    "UniPCMultistepScheduler": ("model_outputs", "last_sample"),
    "HeunDiscreteScheduler": ("prev_derivative", "sample"),
    "PNDMScheduler": ("ets", "cur_sample", "cur_model_output"),
}


def row_tensors(pipe: Any) -> list[str] | None:
    """The callback tensors needed to drop rows from `pipe`, or None (masking)."""
    layout = PIPELINE_TENSORS.get(type(pipe).__name__)
    if layout is None or type(pipe.scheduler).__name__ not in SCHEDULER_STATE:
        return None
    if getattr(pipe.unet.config, "time_cond_proj_dim", None) is not None:
        return None
    if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
        return None  # IP-Adapter image embeds ride outside the callback's tensors
    return list(layout)


def drop_rows(
    pipe: Any, tensors: dict[str, Any], keep: list[int], generators: list[Any]
) -> bool:
    """Keep only rows `keep` (ascending) of the running batch, in place.

    `tensors` is the step-end callback's dict (updated for the pipeline to pop
    back), `generators` the list given to the pipeline. Everything is checked
    before anything changes: False (nothing changed) if a shape is not the one
    the tables promise, so the caller can fall back to masking.
    """
    import torch

    layout = PIPELINE_TENSORS[type(pipe).__name__]
    latents = tensors["latents"]
    n = latents.shape[0]
    guided = 2 if pipe.do_classifier_free_guidance else 1
    expected = {"rows": n, "guided": guided * n, "repeated": guided * n}
    state = _scheduler_state(pipe.scheduler)
    if (
        set(tensors) != set(layout)
        or any(tensors[k].shape[0] != expected[layout[k]] for k in layout)
        or any(t.shape[0] != n for _, t in state)
        or len(generators) != n
    ):
        return False
    index = torch.tensor(keep, device=latents.device)
    by_layout = {
        "rows": index,
        "guided": torch.cat([index + block * n for block in range(guided)]),
        "repeated": torch.arange(guided * len(keep), device=latents.device),
    }
    for name, how in layout.items():
        tensors[name] = tensors[name][by_layout[how].to(tensors[name].device)]
    scheduler = pipe.scheduler
    for name in SCHEDULER_STATE[type(scheduler).__name__]:
        if not hasattr(scheduler, name):  # set on its first step
            continue
        value = getattr(scheduler, name)
        if isinstance(value, list):
            value = [_rows(v, index) for v in value]
        else:
            value = _rows(value, index)
        setattr(scheduler, name, value)
    kept = set(keep)
    generators[:] = [g for i, g in enumerate(generators) if i in kept]
    return True


def _scheduler_state(scheduler: Any) -> list[tuple[str, Any]]:
    """(attribute, tensor) for every batch-shaped tensor the scheduler holds."""
    import torch

    found = []
    for name in SCHEDULER_STATE[type(scheduler).__name__]:
        value = getattr(scheduler, name, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, torch.Tensor):
                found.append((name, item))
    return found


def _rows(value: Any, index: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value[index.to(value.device)]
    return value  # None, or 0 before PNDM's first model output
