"""Loading a diffusers checkpoint for the image engine, and what it accepts.

UNet pipelines (SD, SDXL) and transformer (DiT) pipelines (Stable Diffusion 3)
load the same way; where they differ, this module says so: which components
the checkpoint left out, whether an image-to-image pipeline exists for it,
its native size and size multiple, and whether its LoRAs really landed.
Blocking; runs on the engine's worker thread.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.pipeline import PipelineRunner
from deployments.engines.image.types import SIZE_MULTIPLE
from deployments.engines.image.video.runner import load_video_runner

__all__ = ["geometry", "is_controlnet", "load_controlnet", "load_runner"]

logger = logging.getLogger(__name__)


def load_runner(c: ImageEngineConfig, device: str, dtype: Any) -> PipelineRunner:
    """Both pipelines on `device`, memory savers applied, adapters loaded."""
    from diffusers import DiffusionPipeline

    text2img = DiffusionPipeline.from_pretrained(
        c.model, dtype=dtype, variant=c.variant, **_absent_components(c.model)
    )
    text2img.set_progress_bar_config(disable=True)
    # Before offload, LoRAs and an IP-Adapter: the motion UNet copies the UNet.
    video = None if c.video is None else load_video_runner(c, text2img, device, dtype)
    if c.memory.cpu_offload and device == "cuda":
        text2img.enable_model_cpu_offload()
    else:
        text2img.to(device)
    if c.memory.attention_slicing:
        text2img.enable_attention_slicing()
    if c.memory.vae_slicing:
        text2img.vae.enable_slicing()
    if c.memory.vae_tiling:
        text2img.vae.enable_tiling()
    if c.ip_adapter is not None:  # before img2img: it shares the encoder too
        _load_ip_adapter(text2img, c)
    runner = PipelineRunner(text2img, _image_to_image(text2img, c.model), device=device)
    runner.video = video
    _load_loras(runner, c)
    _load_controlnets(runner, c)
    return runner


def geometry(pipe: Any) -> tuple[int, int]:
    """(native size, size multiple) of a UNet or a transformer (DiT) pipeline.

    A DiT cuts the latents into patches, so sizes must be a multiple of
    vae scale x patch size (16 for SD3); UNets keep SD's multiple of 8.
    """
    scale = int(pipe.vae_scale_factor)
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        return int(unet.config.sample_size) * scale, SIZE_MULTIPLE
    config = pipe.transformer.config
    return int(config.sample_size) * scale, scale * int(config.patch_size)


def _absent_components(model: str) -> dict[str, None]:
    """Components the checkpoint saved as null, to be loaded as None.

    diffusers leaves out only the components a pipeline class declares
    optional; others must be passed as None (SD3 without its T5 encoder:
    `text_encoder_3=None, tokenizer_3=None`, as diffusers documents).
    """
    from diffusers import DiffusionPipeline

    index = DiffusionPipeline.load_config(model)
    return {
        name: None
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and value[0] is None
    }


def _image_to_image(text2img: Any, model: str) -> Any | None:
    """The img2img pipeline over the same components, or None (refused)."""
    from diffusers import AutoPipelineForImage2Image

    try:
        img2img = AutoPipelineForImage2Image.from_pipe(text2img)
    except ValueError as exc:  # no img2img mapping for this pipeline class
        logger.warning("%s: text-to-image only (%s)", model, exc)
        return None
    img2img.set_progress_bar_config(disable=True)
    return img2img


def _load_ip_adapter(pipe: Any, c: ImageEngineConfig) -> None:
    ip = c.ip_adapter
    assert ip is not None
    if not hasattr(pipe, "load_ip_adapter") or getattr(pipe, "unet", None) is None:
        raise RuntimeError(
            f"{c.model}: {type(pipe).__name__} takes no IP-Adapter here; "
            "remove `ip_adapter` from this model's config"
        )
    try:
        pipe.load_ip_adapter(
            ip.path,
            subfolder=ip.subfolder,
            weight_name=ip.weight_name,
            image_encoder_folder=ip.image_encoder_folder,
        )
    except Exception as exc:
        raise RuntimeError(
            f"IP-Adapter {ip.path} does not load into {c.model}: {exc}"
        ) from exc


def _load_controlnets(runner: PipelineRunner, c: ImageEngineConfig) -> None:
    """The configured ControlNets, each checked to build its pipeline now (a
    ControlNet made for another architecture fails the start, not a request)."""
    if c.controlnets and getattr(runner.text2img, "unet", None) is None:
        raise RuntimeError(
            f"{c.model}: {type(runner.text2img).__name__} takes no UNet "
            "ControlNet; remove `controlnets` from this model's config"
        )
    for control in c.controlnets:
        try:
            load_controlnet(runner, control.name, control.path)
        except Exception as exc:
            raise RuntimeError(
                f"ControlNet {control.name!r} ({control.path}) does not fit "
                f"{c.model}: {exc}"
            ) from exc


def is_controlnet(path: str) -> bool:
    """Whether `path` holds a diffusers ControlNetModel (its config.json)."""
    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text()).get("_class_name") == "ControlNetModel"
    except (OSError, ValueError, AttributeError):
        return False


def load_controlnet(runner: PipelineRunner, name: str, path: str) -> None:
    """Load a ControlNet onto the runner's device and build its pipeline
    (raises if it does not fit the UNet). Blocking: the worker thread."""
    from diffusers import ControlNetModel

    if getattr(runner.text2img, "unet", None) is None:
        raise RuntimeError(f"{type(runner.text2img).__name__} takes no UNet ControlNet")
    dtype = runner.text2img.unet.dtype
    model = ControlNetModel.from_pretrained(path, dtype=dtype).to(runner.device)
    runner.add_controlnet(name, model)
    runner.control_pipe((name,))


def _load_loras(runner: PipelineRunner, c: ImageEngineConfig) -> None:
    """The configured adapters, or a start failure saying which and why."""
    pipe = runner.text2img
    kind = type(pipe).__name__
    if c.loras and not hasattr(pipe, "load_lora_weights"):
        raise RuntimeError(
            f"{c.model}: {kind} cannot load LoRA adapters; "
            "remove `loras` from this model's config"
        )
    for lora in c.loras:
        try:
            runner.load_lora(lora.name, lora.path)
        except Exception as exc:
            raise RuntimeError(
                f"LoRA {lora.name!r} ({lora.path}) does not load into {kind}: {exc}"
            ) from exc
        # diffusers only warns when no key matches: the adapter would be empty.
        loaded = {n for names in pipe.get_list_adapters().values() for n in names}
        if lora.name not in loaded:
            raise RuntimeError(
                f"LoRA {lora.name!r} ({lora.path}) matches no layer of {kind}: "
                "is it made for another architecture?"
            )
