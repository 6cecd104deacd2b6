"""Cutting rows out of a running batch: every offered scheduler, no checkpoint.

A scheduler step is elementwise per row, so a batch that loses rows midway
must continue bit for bit like a batch that never had them (same per-row
generators, same fake model).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from deployments.engines.image.pipeline import SCHEDULERS
from deployments.engines.image.rows import (
    PIPELINE_TENSORS,
    SCHEDULER_STATE,
    drop_rows,
    row_tensors,
)

ROWS, STEPS = 4, 6
SHAPE = (4, 8, 8)


def _pipe(scheduler: Any, *, guided: bool = True, name: str = "") -> Any:
    """A stand-in with the attributes `rows` reads, named as the real one."""
    cls = type(name or "StableDiffusionPipeline", (), {})
    pipe = cls()
    pipe.scheduler = scheduler
    pipe.do_classifier_free_guidance = guided
    pipe.unet = type("Unet", (), {"config": type("C", (), {})()})()
    pipe.unet.config.time_cond_proj_dim = None
    return pipe


def _scheduler(name: str) -> Any:
    import diffusers

    cls_name, overrides = SCHEDULERS[name]
    return getattr(diffusers, cls_name)(**overrides)


def _model(x: torch.Tensor, t: Any) -> torch.Tensor:
    # Elementwise, so any row's output depends on that row alone.
    return torch.sin(x) * 0.5 + float(t) / 1000.0


def _denoise(
    name: str, seeds: list[int], cut: int | None = None, keep: list[int] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and positive prompt rows after STEPS steps, cutting at step `cut`."""
    from diffusers.utils.torch_utils import randn_tensor

    scheduler = _scheduler(name)
    pipe = _pipe(scheduler)
    scheduler.set_timesteps(STEPS)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    latents = randn_tensor((len(seeds), *SHAPE), generator=generators)
    latents = latents * scheduler.init_noise_sigma
    embeds = torch.arange(len(seeds), dtype=torch.float32).repeat(2)[:, None]
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    extra = {"generator": generators} if takes_generator else {}
    for i, t in enumerate(scheduler.timesteps):
        eps = _model(scheduler.scale_model_input(latents, t), t)
        latents = scheduler.step(eps, t, latents, return_dict=False, **extra)[0]
        if i == cut:
            tensors = {"latents": latents, "prompt_embeds": embeds}
            assert drop_rows(pipe, tensors, list(keep), generators)
            latents, embeds = tensors["latents"], tensors["prompt_embeds"]
            assert len(generators) == len(keep)  # the pipeline's own list
    half = len(embeds) // 2
    assert torch.equal(embeds[:half], embeds[half:])  # [negative; positive] kept
    return latents, embeds[half:]


def test_every_offered_scheduler_has_its_state_listed() -> None:
    assert {cls for cls, _ in SCHEDULERS.values()} <= set(SCHEDULER_STATE)


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_a_cut_batch_continues_like_one_without_those_rows(name: str, cut: int) -> None:
    seeds = [10, 11, 12, 13]
    keep = [0, 2, 3]
    cut_latents, cut_embeds = _denoise(name, seeds, cut=cut, keep=keep)
    ref_latents, _ = _denoise(name, [seeds[k] for k in keep])
    assert torch.equal(cut_latents, ref_latents)
    assert cut_embeds[:, 0].tolist() == [float(k) for k in keep]


def test_sdxl_conditioning_is_cut_by_its_layout() -> None:
    n, keep = 3, [0, 2]
    tensors = {
        "latents": torch.arange(n, dtype=torch.float32)[:, None],
        "prompt_embeds": torch.arange(2 * n, dtype=torch.float32)[:, None],
        "add_text_embeds": torch.arange(2 * n, dtype=torch.float32)[:, None],
        "add_time_ids": torch.tensor([[-1.0], [1.0]]).repeat(n, 1),
    }
    pipe = _pipe(_scheduler("euler"), name="StableDiffusionXLPipeline")
    assert drop_rows(pipe, tensors, keep, [None] * n)
    assert tensors["latents"][:, 0].tolist() == [0, 2]
    assert tensors["prompt_embeds"][:, 0].tolist() == [0, 2, 3, 5]
    assert tensors["add_text_embeds"][:, 0].tolist() == [0, 2, 3, 5]
    # SDXL text-to-image repeats one [negative, positive] pair per row.
    assert tensors["add_time_ids"][:, 0].tolist() == [-1, 1, -1, 1]


def test_without_guidance_the_conditioning_has_one_row_per_image() -> None:
    tensors = {
        "latents": torch.arange(3.0)[:, None],
        "prompt_embeds": torch.arange(3.0)[:, None],
    }
    assert drop_rows(_pipe(_scheduler("euler"), guided=False), tensors, [1], [0] * 3)
    assert tensors["prompt_embeds"][:, 0].tolist() == [1.0]


def test_unexpected_shapes_change_nothing() -> None:
    latents = torch.zeros(3, 1)
    tensors = {"latents": latents, "prompt_embeds": torch.zeros(3, 1)}  # not 2n
    generators = [0, 1, 2]
    assert not drop_rows(_pipe(_scheduler("euler")), tensors, [0], generators)
    assert tensors["latents"] is latents and generators == [0, 1, 2]
    scheduler = _scheduler("unipc")
    scheduler.last_sample = torch.zeros(5, 1)  # history of another batch size
    tensors = {"latents": latents, "prompt_embeds": torch.zeros(6, 1)}
    assert not drop_rows(_pipe(scheduler), tensors, [0], generators)
    assert tensors["latents"] is latents


def test_unknown_pipelines_schedulers_and_guidance_embeddings_are_masked() -> None:
    import diffusers

    assert row_tensors(_pipe(_scheduler("euler"))) == ["latents", "prompt_embeds"]
    for name, layout in PIPELINE_TENSORS.items():
        assert row_tensors(_pipe(_scheduler("euler"), name=name)) == list(layout)
    assert row_tensors(_pipe(_scheduler("euler"), name="FluxPipeline")) is None
    lcm = diffusers.LCMScheduler()
    assert row_tensors(_pipe(lcm)) is None
    guided_unet = _pipe(_scheduler("euler"))
    guided_unet.unet.config.time_cond_proj_dim = 256
    assert row_tensors(guided_unet) is None
