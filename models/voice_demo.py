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

``build_speecht5_model`` builds the family's second architecture the same way:
a tiny random ``SpeechT5ForTextToSpeech`` (autoregressive mel decoder) with
its ``SpeechT5HifiGan`` vocoder in ``vocoder/``, a character-level
sentencepiece tokenizer trained in memory, and one fixed x-vector per voice in
``speaker_embeddings.safetensors`` (SpeechT5 has no speaker table of its own).
"""

from __future__ import annotations

import json
from pathlib import Path

from models.assemble import build_folder

__all__ = [
    "SOLO_VOICES",
    "SPEAKER_FILE",
    "SPEECHT5_VOICES",
    "VOICES",
    "VOICE_FILE",
    "build_speecht5_model",
    "build_voice_model",
]

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
# SpeechT5: x-vectors by voice name (the engine reads the same file name).
SPEAKER_FILE = "speaker_embeddings.safetensors"
SPEECHT5_VOICES = ("dara", "eli")
# microsoft/speecht5_tts's character inventory, upper and lower case; the
# tokenizer spells a space as "▁".
SPEECHT5_CHARACTERS = (
    " '-.,!?0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
SPEECHT5_SPECIALS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}


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


def _speecht5_configs(vocab_size: int):  # -> (SpeechT5Config, HifiGanConfig)
    from transformers import SpeechT5Config, SpeechT5HifiGanConfig

    # ~0.13 M parameters with the vocoder; 80 mel bins, two frames per
    # decoder step, hop 4*4*4*4 = 256 samples at 16 kHz.
    model = SpeechT5Config(
        vocab_size=vocab_size,
        hidden_size=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        speech_decoder_prenet_units=32,
        speech_decoder_postnet_layers=2,
        speech_decoder_postnet_units=32,
        speaker_embedding_dim=512,  # x-vector size, as the real checkpoint
        reduction_factor=2,
        max_speech_positions=1200,
        encoder_max_relative_position=32,
        bos_token_id=SPEECHT5_SPECIALS["bos_id"],
        pad_token_id=SPEECHT5_SPECIALS["pad_id"],
        eos_token_id=SPEECHT5_SPECIALS["eos_id"],
        decoder_start_token_id=SPEECHT5_SPECIALS["eos_id"],
    )
    vocoder = SpeechT5HifiGanConfig(
        model_in_dim=80,
        sampling_rate=SAMPLE_RATE,
        upsample_initial_channel=32,
        upsample_rates=(4, 4, 4, 4),
        upsample_kernel_sizes=(8, 8, 8, 8),
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
        # Wider than the 0.01 default, so random weights make audible samples
        # (peaks ~0.2) rather than ~1e-8, which 16-bit PCM rounds to silence.
        initializer_range=0.15,
    )
    return model, vocoder


def _char_sentencepiece() -> bytes:
    """A character-level sentencepiece model, trained in memory.

    Deterministic: piece order follows character counts, which the corpus
    fixes (every character a different number of times); one thread, no
    sampling or shuffling, and an in-memory writer so no temp path lands in
    the model's trainer spec.
    """
    import io

    import sentencepiece as spm

    chars = SPEECHT5_CHARACTERS.replace(" ", "")
    lines = [c * (len(chars) - i) for i, c in enumerate(chars)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="char",
        vocab_size=len(chars) + 1 + len(SPEECHT5_SPECIALS),  # + "▁"
        character_coverage=1.0,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        normalization_rule_name="identity",
        minloglevel=2,
        **SPEECHT5_SPECIALS,
    )
    return model.getvalue()


def _write_speecht5_model(tmp: Path) -> None:
    """Tokenizer, model, vocoder (``vocoder/``), voice names and x-vectors."""
    import torch
    from safetensors.torch import save_file
    from transformers import (
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5Tokenizer,
    )

    from models.build_demo import SEED

    spm_path = tmp / "spm_char.model"
    spm_path.write_bytes(_char_sentencepiece())
    tokenizer = SpeechT5Tokenizer(str(spm_path))
    spm_path.unlink()  # save_pretrained writes it back under the same name
    tokenizer.save_pretrained(tmp)
    model_config, vocoder_config = _speecht5_configs(len(tokenizer))
    with torch.random.fork_rng(devices=[]):  # seed without touching caller's RNG
        torch.manual_seed(SEED)
        model = SpeechT5ForTextToSpeech(model_config).eval()
        vocoder = SpeechT5HifiGan(vocoder_config).eval()
        # Random weights would fire the stop head at once (two sigmoids near
        # 0.5 sum to ~1 >= threshold 0.5): make it never fire instead, so the
        # engine's length bound ends every segment, the case to prove.
        with torch.no_grad():
            model.speech_decoder_postnet.prob_out.bias.fill_(-6.0)
        # x-vectors are unit-scale 512-d speaker codes; the model normalizes.
        xvectors = torch.nn.functional.normalize(
            torch.randn(len(SPEECHT5_VOICES), model_config.speaker_embedding_dim)
        )
    _save_quietly(model, tmp)
    _save_quietly(vocoder, tmp / "vocoder")
    save_file(
        {name: xvectors[i].contiguous() for i, name in enumerate(SPEECHT5_VOICES)},
        tmp / SPEAKER_FILE,
    )
    (tmp / VOICE_FILE).write_text(json.dumps({"voices": list(SPEECHT5_VOICES)}) + "\n")


def _save_quietly(model, out: Path) -> None:
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out, safe_serialization=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def build_voice_model(
    out_dir: Path, *, force: bool = False, solo: bool = False
) -> Path:
    """Build a demo VITS into ``out_dir`` and return it (reused when complete):
    the two-speaker one, or with ``solo`` the one-speaker 22.05 kHz one."""
    return build_folder(
        Path(out_dir), lambda tmp: _write_voice_model(tmp, solo), force=force
    )


def build_speecht5_model(out_dir: Path, *, force: bool = False) -> Path:
    """Build the demo SpeechT5 (two voices, 16 kHz vocoder) into ``out_dir``."""
    return build_folder(Path(out_dir), _write_speecht5_model, force=force)
