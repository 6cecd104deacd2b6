"""The voice family's demo checkpoint: a tiny two-speaker VITS, built offline.

Same contract as the text model in ``models.build_demo``: random weights on the
real architecture (transformers ``VitsModel``, the one MMS-TTS checkpoints use),
seeded so two builds are byte-identical, assembled in a temp folder and moved
into place only once its content-hash marker is written.

The speech is noise-like (the weights are random), but every serving path is
real: character tokenizer with blank interspersing, stochastic duration
predictor, normalizing flow and HiFi-GAN decoder at 16 kHz. Two speakers make
voice selection and ``NOT_FOUND`` for an unknown voice testable; their names
live in ``maestro_voice.json`` beside the weights (checkpoints without the
file get ``speaker_0``, ``speaker_1``, ... from the engine).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

__all__ = ["SOLO_VOICES", "VOICES", "VOICE_FILE", "build_voice_model"]

VOICE_FILE = "maestro_voice.json"
VOICES = ("ava", "ben")
PAD = "<pad>"  # id 0: the blank VitsTokenizer puts between characters
# MMS-TTS-eng's inventory: lowercase letters, digits, space, apostrophe, hyphen.
# Everything else is normalized away by the engine before tokenizing.
CHARACTERS = " '-0123456789abcdefghijklmnopqrstuvwxyz"
SAMPLE_RATE = 16_000
# The second demo voice model: one speaker at 22.05 kHz with the deterministic
# duration predictor (VITS's other inference path), so the registry switches
# between two genuinely different checkpoints.
SOLO_VOICES = ("cleo",)
SOLO_SAMPLE_RATE = 22_050


def _vits_config(solo: bool = False):  # -> transformers.VitsConfig (lazy import)
    from transformers import VitsConfig

    # ~0.1 M parameters; hop 8*8*4 = 256 samples per spectrogram frame.
    return VitsConfig(
        vocab_size=1 + len(CHARACTERS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=64,
        flow_size=32,
        spectrogram_bins=65,
        upsample_initial_channel=64,
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        resblock_kernel_sizes=(3, 5),
        resblock_dilation_sizes=((1, 3), (1, 3)),
        duration_predictor_filter_channels=32,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        num_speakers=len(SOLO_VOICES if solo else VOICES),
        speaker_embedding_size=0 if solo else 16,
        sampling_rate=SOLO_SAMPLE_RATE if solo else SAMPLE_RATE,
        use_stochastic_duration_prediction=not solo,
        pad_token_id=0,
    )


def _write_voice_model(tmp: Path, solo: bool = False) -> None:
    """Write vocab + tokenizer files, config, weights and the voice names."""
    import torch
    from transformers import VitsModel, VitsTokenizer
    from transformers.utils import logging as hf_logging

    from models.build_demo import SEED

    vocab = {PAD: 0, **{c: i + 1 for i, c in enumerate(CHARACTERS)}}
    vocab_path = tmp / "vocab.json"
    vocab_path.write_text(json.dumps(vocab, indent=2, sort_keys=True) + "\n")
    # normalize=True lowercases and drops out-of-vocabulary characters;
    # phonemize=False: MMS-TTS reads characters, and espeak is not needed.
    VitsTokenizer(
        str(vocab_path), pad_token=PAD, unk_token=PAD, phonemize=False
    ).save_pretrained(tmp)
    with torch.random.fork_rng(devices=[]):  # seed without touching caller's RNG
        torch.manual_seed(SEED)
        model = VitsModel(_vits_config(solo)).to(torch.float32).eval()
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    voices = SOLO_VOICES if solo else VOICES
    (tmp / VOICE_FILE).write_text(json.dumps({"voices": list(voices)}) + "\n")


def build_voice_model(
    out_dir: Path, *, force: bool = False, solo: bool = False
) -> Path:
    """Build a demo VITS into ``out_dir`` and return it (reused when complete):
    the two-speaker one, or with ``solo`` the one-speaker 22.05 kHz one."""
    # Imported here: build_demo imports this module for its FAMILIES table.
    from models.build_demo import MARKER, is_complete, tree_hash

    out_dir = Path(out_dir)
    name = out_dir.name
    if not force and is_complete(out_dir):
        print(f"{name}: up to date at {out_dir}")
        return out_dir
    print(f"{name}: building into {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _write_voice_model(tmp, solo)
        tmp.chmod(0o755)  # mkdtemp and safetensors create owner-only modes
        for path in tmp.iterdir():
            path.chmod(0o644)
        (tmp / MARKER).write_text(tree_hash(tmp) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{name}: done, sha256 {(out_dir / MARKER).read_text().strip()[:16]}")
    return out_dir
