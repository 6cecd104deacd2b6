"""Build tiny, deterministic demo models offline for Maestro's tests and demos.

The serving stack needs real checkpoints to exercise (vLLM for text, later image and
voice), but CI and developer machines have no access to model hubs. Each family
builder therefore creates a small random-weight model from scratch. Builds are
seeded so that two builds are byte-identical, which keeps caches and content hashes
stable and lets tests assert on exact outputs.

Usage: ``python -m models.build_demo [--out models/demo] [--force]``
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from models.assemble import MARKER, build_folder, is_complete, tree_hash

__all__ = ["FAMILIES", "MARKER", "build_text_model", "is_complete", "main", "tree_hash"]
from models.image_demo import (
    build_controlnet_model,
    build_image_model,
    build_ip_adapter,
    build_sd3_model,
)
from models.video_demo import build_motion_adapter, build_svd_model
from models.voice_demo import build_speecht5_model, build_voice_model

SEED = 1234
MAX_CONTEXT = 2048
VOCAB_SIZE = 512
SPECIAL_TOKENS = ("<s>", "</s>", "<pad>")  # ids 0, 1, 2 in this order
DEMO_LORA = "demo-lora"  # the Qwen2 model's LoRA, under its loras/

# Llama-2 flavoured template; the eos token closes every turn so that generation
# stops by itself at the end of the assistant's answer.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('Unsupported role: ' + message['role']) }}"
    "{% endif %}"
    "### {{ message['role'] }}\n{{ message['content'] | trim }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}### assistant\n{% endif %}"
)

_WORDS = {
    "subject": "the cat|a robot|my friend|the old man|our team|the river|a child|"
    "the server|every bird|the teacher|a small model|the city|her brother|"
    "the farmer|a young doctor|the quick fox|this engine|the neighbours|a pilot",
    "verb": "sees|builds|likes|finds|writes|carries|opens|remembers|follows|paints|"
    "answers|moves|watches|explains|borrows|cleans|measures|sells|joins|drops",
    "object": "a red box|the long road|some bread|the green door|a quiet song|"
    "the last letter|three apples|a bright star|the map|an idea|the window|"
    "a heavy bag|the yellow kite|fresh water|the broken clock|twelve books|"
    "the purple jacket|a warm blanket|the question",
    "tail": "today|in the morning|after the rain|near the sea|with great care|"
    "before dinner|at night|for a while|without a word|again|during the winter|"
    "behind the house|because it was cold|every Sunday|just in time|slowly",
}


def _corpus(n_sentences: int = 400) -> list[str]:
    """Return English-ish training text; a seeded local RNG keeps it reproducible."""
    rng = random.Random(SEED)
    words = {k: v.split("|") for k, v in _WORDS.items()}
    lines = []
    for i in range(n_sentences):
        parts = [rng.choice(words[k]) for k in ("subject", "verb", "object", "tail")]
        sentence = " ".join(parts).capitalize() + rng.choice(".!?")
        # Teach the tokenizer the chat scaffolding too, so prompts stay short.
        lines.append(f"### {('system', 'user', 'assistant')[i % 3]}\n{sentence}")
    return lines


def _llm_config(architecture: str, **fields: Any) -> Any:
    """The demo LLM's config for one of the two demo architectures."""
    from transformers import LlamaConfig, Qwen2Config

    if architecture == "llama":
        return LlamaConfig(**fields)
    if architecture == "qwen2":  # biased q/k/v projections, another vLLM model class
        return Qwen2Config(**fields, use_sliding_window=False)
    raise ValueError(f"unknown demo LLM architecture {architecture!r}")


def _write_text_model(tmp: Path, architecture: str = "llama") -> None:
    """Write tokenizer, config, generation config and float32 weights into ``tmp``."""
    # Heavy imports stay local so the CLI starts fast and other families can be
    # built without the text stack.
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import (
        AutoModelForCausalLM,
        GenerationConfig,
        PreTrainedTokenizerFast,
    )
    from transformers.utils import logging as hf_logging

    bos, eos, pad = SPECIAL_TOKENS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any UTF-8 encodes
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if tok.get_vocab_size() != VOCAB_SIZE:  # corpus too small to fill the vocab
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} tokens")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, 0)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        model_max_length=MAX_CONTEXT,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(tmp)

    ids = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
    # head_dim = 256 / 4 = 64: vLLM's CPU attention refuses smaller heads.
    config = _llm_config(
        architecture,
        vocab_size=VOCAB_SIZE,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_CONTEXT,
        tie_word_embeddings=False,
        dtype="float32",  # vLLM on CPU needs fp32; bf16 crashes on some CPUs
        **ids,
    )
    with torch.random.fork_rng(devices=[]):  # seed without touching caller's RNG
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config).to(torch.float32)
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # keep the CLI to our own short lines
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    GenerationConfig(**ids).save_pretrained(tmp)
    if architecture == "qwen2":
        _write_text_lora(tmp / "loras" / DEMO_LORA, config, "maestro-demo-qwen2")


def _write_text_lora(out: Path, config: Any, base: str, rank: int = 8) -> None:
    """A PEFT-format LoRA on q_proj/v_proj (what vLLM's runtime loading reads):
    random but non-zero B, so the adapter visibly changes greedy outputs."""
    import json

    import torch
    from safetensors.torch import save_file

    head_dim = config.hidden_size // config.num_attention_heads
    out_features = {
        "q_proj": config.num_attention_heads * head_dim,
        "v_proj": config.num_key_value_heads * head_dim,
    }
    tensors = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1)
        for layer in range(config.num_hidden_layers):
            for name, features in out_features.items():
                key = f"base_model.model.model.layers.{layer}.self_attn.{name}"
                a = torch.randn(rank, config.hidden_size) / config.hidden_size**0.5
                tensors[f"{key}.lora_A.weight"] = a
                tensors[f"{key}.lora_B.weight"] = torch.randn(features, rank)
    out.mkdir(parents=True)
    save_file(tensors, out / "adapter_model.safetensors")
    adapter = {
        "peft_type": "LORA",
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": sorted(out_features),
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter, indent=2) + "\n")


def build_text_model(
    out_dir: Path, *, force: bool = False, architecture: str = "llama"
) -> Path:
    """Build a demo LLM (``llama`` or ``qwen2``) into ``out_dir`` and return it.

    Both share the tokenizer and sizes; the second architecture gives the
    text family a second registered model that is a different vLLM model class.

    The model is assembled in a sibling temp folder and moved into place only after
    the marker (a content hash) is written, so an interrupted build never looks
    complete. An existing complete build is reused unless ``force`` is set.
    """
    return build_folder(
        out_dir, partial(_write_text_model, architecture=architecture), force=force
    )


# Folder name -> builder; each builds into ``<out>/<name>``. Every family has
# a second model of another architecture (or configuration) for the registry.
FAMILIES: dict[str, Callable[..., Path]] = {
    "text": build_text_model,
    "text-qwen2": partial(build_text_model, architecture="qwen2"),
    "image": build_image_model,
    "image-sd3": build_sd3_model,  # a transformer (DiT) backbone, flow matching
    "image-controlnet": build_controlnet_model,  # for the SD model's UNet
    "image-ip-adapter": build_ip_adapter,  # for the SD model's UNet
    "video-motion": build_motion_adapter,  # AnimateDiff on the SD model's UNet
    "video-svd": build_svd_model,  # Stable Video Diffusion, image-to-video
    "voice": build_voice_model,
    "voice-solo": partial(build_voice_model, solo=True),
    "voice-speecht5": build_speecht5_model,  # autoregressive mels + HiFi-GAN
}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: build every family under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/demo"))
    parser.add_argument("--force", action="store_true", help="rebuild even if done")
    args = parser.parse_args(argv)
    for name, builder in FAMILIES.items():
        builder(args.out / name, force=args.force)


if __name__ == "__main__":
    main()
