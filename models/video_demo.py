"""The video demo components: a motion adapter and a Stable Video Diffusion pipeline.

Both at toy sizes with random weights (as diffusers' own fast tests build
theirs), so AnimateDiff and SVD run for real on a CPU:

- ``build_motion_adapter``: an AnimateDiff ``MotionAdapter`` whose blocks match
  the demo SD UNet (``models.image_demo``: block_out_channels (32, 64), one
  layer per block, 32 norm groups), so ``AnimateDiffPipeline.from_pipe`` turns
  the demo SD pipeline into a text-to-video one.
- ``build_svd_model``: an image-to-video pipeline (spatio-temporal UNet, a VAE
  with a temporal decoder, a CLIP vision encoder), native size 64x64.

Same conventions as ``models.build_demo``: seeded, assembled in a temp folder,
marked complete with a content hash, reused when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.assemble import build_folder
from models.image_demo import IMAGE_SIZE, _seeded_quiet_save

__all__ = ["SVD_FRAMES", "build_motion_adapter", "build_svd_model"]

SVD_FRAMES = 8  # the demo SVD UNet's default clip length


def _write_motion_adapter(tmp: Path) -> None:
    """Temporal attention blocks for each of the demo UNet's resolutions.

    A motion adapter's output projections start at zero in real training;
    here they are random like the rest, so frames really influence each
    other (a test can tell a clip from 16 independent images)."""
    import torch
    from diffusers import MotionAdapter

    from models.build_demo import SEED

    with _seeded_quiet_save():
        torch.manual_seed(SEED + 10)
        adapter = MotionAdapter(
            block_out_channels=(32, 64),
            motion_layers_per_block=1,
            motion_norm_num_groups=32,
            motion_num_attention_heads=4,
            motion_max_seq_length=32,  # the most frames a clip may have
        )
        with torch.no_grad():
            for name, param in adapter.named_parameters():
                if name.endswith("proj_out.weight"):
                    param.normal_(std=0.05)
        adapter.save_pretrained(tmp, safe_serialization=True)


def _svd_pipeline() -> Any:
    """SVD's parts at toy sizes: 8-channel UNet input (noise + image latents)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from models.build_demo import SEED

    torch.manual_seed(SEED + 11)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=IMAGE_SIZE // 2,  # the 2-block VAE downsamples by 2
        num_frames=SVD_FRAMES,
        block_out_channels=(32, 64),
        layers_per_block=1,
        in_channels=8,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=4,
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=3 * 32,  # fps, motion, noise aug
    )
    torch.manual_seed(SEED + 12)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        latent_channels=4,
    )
    torch.manual_seed(SEED + 13)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            image_size=224,  # SVD resizes its input image to 224x224
            patch_size=32,  # 7x7 patches
        )
    )
    scheduler = EulerDiscreteScheduler(  # SVD's own scheduler settings
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )


def _write_svd_model(tmp: Path) -> None:
    with _seeded_quiet_save():
        _svd_pipeline().save_pretrained(tmp, safe_serialization=True)


def build_motion_adapter(out_dir: Path, *, force: bool = False) -> Path:
    """Build the demo AnimateDiff motion adapter into ``out_dir``."""
    return build_folder(Path(out_dir), _write_motion_adapter, force=force)


def build_svd_model(out_dir: Path, *, force: bool = False) -> Path:
    """Build the demo Stable Video Diffusion pipeline into ``out_dir``."""
    return build_folder(Path(out_dir), _write_svd_model, force=force)
