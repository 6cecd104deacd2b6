"""The image family's demo checkpoint: a tiny Stable Diffusion pipeline and a LoRA.

Real architecture (UNet2DConditionModel + AutoencoderKL + CLIPTextModel, the parts
of SD 1.x), random weights, so diffusers, schedulers, image-to-image and LoRA
loading are exercised for real while a 64x64 image takes a fraction of a second
on a CPU. A demo LoRA (``loras/demo-style``) is shipped with it so adapter
selection is tested on real peft layers, not a mock.

A second model, ``build_sd3_model``, is a tiny Stable Diffusion 3 pipeline:
a transformer (DiT) backbone, two CLIP text encoders with projections, no T5
(optional in SD3: its embeddings are zeros), a 16-channel VAE and a flow-match
scheduler, so the engine is exercised on a non-UNet family too.

Built with the conventions of ``models.build_demo``: seeded (two builds are
byte-identical), assembled in a temp folder, marked complete with a content hash
and moved into place, and reused when already complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from models.assemble import build_folder

__all__ = [
    "IP_ADAPTER_WEIGHTS",
    "build_controlnet_model",
    "build_ip_adapter",
    "DEMO_LORA",
    "IMAGE_SIZE",
    "LORA_DIR",
    "SD3_SIZE_MULTIPLE",
    "build_image_model",
    "build_sd3_model",
]

IMAGE_SIZE = 64  # native resolution of the demo pipeline
LORA_DIR = "loras"
IP_ADAPTER_WEIGHTS = "ip-adapter.safetensors"  # beside image_encoder/
DEMO_LORA = "demo-style"
_VOCAB = 384
_CLIP_MAX_LENGTH = 77  # SD conditioning length; the text encoder's positions
# SD3: a 4-block VAE (downsamples by 8, as the real one) and 2x2 patches.
_SD3_VAE_SCALE, _SD3_PATCH = 8, 2
SD3_SIZE_MULTIPLE = _SD3_VAE_SCALE * _SD3_PATCH  # width/height the DiT accepts


def _tokenizer() -> Any:
    """A byte-level BPE tokenizer over the text family's corpus (any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    from models.build_demo import SPECIAL_TOKENS, _corpus

    bos, eos, pad = SPECIAL_TOKENS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=_VOCAB,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # CLIP-style framing: <s> prompt </s>, padded to 77 by the pipeline.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, 0), (eos, 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        model_max_length=_CLIP_MAX_LENGTH,
    )


def _pipeline() -> Any:
    """The SD-architecture pipeline, each component from its own fixed seed."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from models.build_demo import SEED

    tokenizer = _tokenizer()
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,  # the 2-block VAE downsamples by 2
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        norm_num_groups=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKL(
        sample_size=IMAGE_SIZE,
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
    )
    torch.manual_seed(SEED + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=_CLIP_MAX_LENGTH,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        )
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _save_demo_lora(pipe: Any, out: Path) -> None:
    """A rank-4 LoRA on the UNet's attention, random (non-zero) A and B."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from models.build_demo import SEED

    config = LoraConfig(
        r=4,
        lora_alpha=4,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        init_lora_weights=False,  # B=0 would make the adapter a no-op
    )
    torch.manual_seed(SEED + 3)
    pipe.unet.add_adapter(config, adapter_name=DEMO_LORA)
    StableDiffusionPipeline.save_lora_weights(
        out,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet, adapter_name=DEMO_LORA),
        unet_lora_adapter_metadata=_sorted_sets(config.to_dict()),
        safe_serialization=True,
    )


@contextmanager
def _seeded_quiet_save() -> Iterator[None]:
    """Fork the RNG (seed without touching the caller's) and mute the savers."""
    import torch
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    with torch.random.fork_rng(devices=[]):
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        disable_progress_bars()  # keep the CLI to our own short lines
        try:
            yield
        finally:
            enable_progress_bars()
            diffusers_logging.set_verbosity(verbosity)


def _sorted_sets(metadata: dict[str, Any]) -> dict[str, Any]:
    """peft keeps `target_modules` as a set: its order follows the process's
    string hash seed, so sort it to keep the LoRA's bytes the same per build."""
    return {k: sorted(v) if isinstance(v, set) else v for k, v in metadata.items()}


def _write_image_model(tmp: Path) -> None:
    with _seeded_quiet_save():
        pipe = _pipeline()
        pipe.save_pretrained(tmp, safe_serialization=True)
        # After the pipeline is saved: the adapter lives in its own folder.
        _save_demo_lora(pipe, tmp / LORA_DIR / DEMO_LORA)


def _sd3_pipeline() -> Any:
    """SD3's parts at toy sizes (as diffusers' fast tests), each seeded.

    Two CLIP encoders (hidden 32, projection 32): their hidden states are
    concatenated (64 = ``joint_attention_dim``, no padding or truncation) and
    their pooled outputs too (64 = ``pooled_projection_dim``). No T5.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from models.build_demo import SEED

    tokenizer = _tokenizer()
    torch.manual_seed(SEED)
    transformer = SD3Transformer2DModel(
        sample_size=IMAGE_SIZE // _SD3_VAE_SCALE,  # latent side of a 64x64 image
        patch_size=_SD3_PATCH,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        pos_embed_max_size=64,  # up to 64 patches a side: 1024 px
    )
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKL(
        sample_size=IMAGE_SIZE,
        block_out_channels=(16, 16, 16, 16),  # 4 blocks: downsamples by 8
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=16,
        norm_num_groups=8,
        use_quant_conv=False,  # as SD3's VAE
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5305,
    )
    encoders = []
    for offset in (2, 3):
        torch.manual_seed(SEED + offset)
        encoders.append(
            CLIPTextModelWithProjection(
                CLIPTextConfig(
                    vocab_size=len(tokenizer),
                    hidden_size=32,
                    intermediate_size=64,
                    projection_dim=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    max_position_embeddings=_CLIP_MAX_LENGTH,
                    bos_token_id=0,
                    eos_token_id=1,
                    pad_token_id=2,
                )
            )
        )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),  # SD3's config
        vae=vae,
        text_encoder=encoders[0],
        tokenizer=tokenizer,
        text_encoder_2=encoders[1],
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )


def _write_sd3_model(tmp: Path) -> None:
    with _seeded_quiet_save():
        _sd3_pipeline().save_pretrained(tmp, safe_serialization=True)


def build_image_model(out_dir: Path, *, force: bool = False) -> Path:
    """Build the SD-architecture demo pipeline (+ demo LoRA) into ``out_dir``.

    Same contract as ``build_text_model``: an interrupted build never looks
    complete, and a complete one is reused unless ``force`` is set.
    """
    return build_folder(Path(out_dir), _write_image_model, force=force)


def build_sd3_model(out_dir: Path, *, force: bool = False) -> Path:
    """Build the Stable Diffusion 3 (DiT) demo pipeline into ``out_dir``.

    Same contract as ``build_image_model``; no LoRA ships with it.
    """
    out_dir = Path(out_dir)
    return build_folder(out_dir, _write_sd3_model, force=force)


def _write_controlnet(tmp: Path) -> None:
    """A ControlNet for the demo UNet (diffusers' `from_unet`, as its own
    tests build theirs), with its zero-initialized convolutions drawn from a
    fixed seed instead: zeros would add nothing to the UNet, and no test
    could tell a control image reached it."""
    import torch
    from diffusers import ControlNetModel

    from models.build_demo import SEED

    with _seeded_quiet_save():
        unet = _pipeline().unet
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=(16, 32)
        )
        torch.manual_seed(SEED + 7)
        zeroed = [
            controlnet.controlnet_cond_embedding.conv_out,
            *controlnet.controlnet_down_blocks,
            controlnet.controlnet_mid_block,
        ]
        with torch.no_grad():
            for conv in zeroed:
                conv.weight.normal_(std=0.05)
                conv.bias.normal_(std=0.05)
        controlnet.save_pretrained(tmp, safe_serialization=True)


def build_controlnet_model(out_dir: Path, *, force: bool = False) -> Path:
    """Build the demo ControlNet (canny in serve_config.yaml) into ``out_dir``."""
    return build_folder(Path(out_dir), _write_controlnet, force=force)


def _hidden_size(unet: Any, processor: str) -> int:
    channels = unet.config.block_out_channels
    if processor.startswith("mid_block"):
        return int(channels[-1])
    block = int(processor.split(".")[1])
    if processor.startswith("up_blocks"):
        return int(list(reversed(channels))[block])
    return int(channels[block])


def _write_ip_adapter(tmp: Path) -> None:
    """An IP-Adapter for the demo UNet in the layout diffusers'
    `load_ip_adapter` reads (as its own tests build theirs): `image_proj.*`
    (an ImageProjection to 4 tokens) and `ip_adapter.{1,3,..}.to_{k,v}_ip.*`
    for each cross-attention, beside a tiny CLIP vision encoder; all drawn
    from fixed seeds."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from models.build_demo import SEED

    with _seeded_quiet_save():
        unet = _pipeline().unet
        cross = int(unet.config.cross_attention_dim)
        embed = 32  # the image encoder's projection size
        torch.manual_seed(SEED + 8)
        tensors: dict[str, Any] = {}
        key = 1
        for name in unet.attn_processors:
            if name.endswith("attn1.processor"):
                continue  # self-attention gets no image tokens
            hidden = _hidden_size(unet, name)
            for kv in ("k", "v"):
                tensors[f"ip_adapter.{key}.to_{kv}_ip.weight"] = (
                    torch.randn(hidden, cross) * 0.2
                )
            key += 2
        tensors["image_proj.proj.weight"] = torch.randn(4 * cross, embed) * 0.2
        tensors["image_proj.proj.bias"] = torch.zeros(4 * cross)
        tensors["image_proj.norm.weight"] = torch.ones(cross)
        tensors["image_proj.norm.bias"] = torch.zeros(cross)
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp / IP_ADAPTER_WEIGHTS))
        torch.manual_seed(SEED + 9)
        encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                projection_dim=embed,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=37,
                image_size=32,
                patch_size=4,
            )
        )
        encoder.save_pretrained(tmp / "image_encoder", safe_serialization=True)


def build_ip_adapter(out_dir: Path, *, force: bool = False) -> Path:
    """Build the demo IP-Adapter (weights + image encoder) into ``out_dir``."""
    return build_folder(Path(out_dir), _write_ip_adapter, force=force)
