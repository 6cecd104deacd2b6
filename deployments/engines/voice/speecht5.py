"""Batch-invariant SpeechT5 text-to-speech over transformers' modules.

SpeechT5 (`SpeechT5ForTextToSpeech`) is autoregressive: a text encoder, then a
decoder that predicts two (`reduction_factor`) mel frames per step until a stop
head fires, a convolutional postnet, and a separate HiFi-GAN vocoder
(`SpeechT5HifiGan`) from mels to 16 kHz samples. It has no speaker table:
a voice is a 512-d x-vector, which Maestro keeps beside the checkpoint
(`SPEAKER_FILE`, one tensor per voice name).

`SpeechT5ForTextToSpeech.generate` does take a padded batch with an attention
mask, but it cannot serve segments of unrelated requests as one batch:

- its decoder prenet applies dropout even in eval (Tacotron 2's trick for
  varied prosody), drawn from torch's global RNG with ONE mask shared by every
  row, so no per-request seed is possible and a row's samples depend on its
  batch-mates;
- its min/max lengths come from the padded encoder length, so a short row's
  bound moves with the longest row in the batch;
- it vocodes the padded spectrogram batch, so HiFi-GAN's convolutions read
  the padding into a short row's last samples.

`synthesize_rows` runs the same modules in the same order (`_generate_speech`'s
loop) with a dropout mask per row from the row's own generator (drawn on the
CPU, so a seed gives the same mask on CPU and GPU), per-row length bounds, and
the postnet and vocoder per row at the row's own length. Rows of a batch step
together (one decoder call per step for the whole batch) until the last one
stops; a finished row costs its share of those calls but its output is fixed.
Only the newest frame's prenet output is used (transformers recomputes the
whole sequence each step and keeps the last position), so only its dropout
mask is drawn: the same distribution as transformers' masks, not the same
draws. In float32 on CPU a row batched matches it alone to float rounding.

Bounded length: random (or poorly trained) weights may never fire the stop
head, so every row stops by `StopRule.max_steps(n_tokens)` at the latest.
There is no duration control (VITS's length_scale), so speaking rate is fixed
at 1.0 (the engine's limits say so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SpeechT5Row", "SpeechT5Voice", "StopRule", "synthesize_rows"]


@dataclass(frozen=True)
class SpeechT5Row:
    """One utterance: token ids (eos included), noise seed, speaker row."""

    input_ids: Sequence[int]
    seed: int
    speaker: int = 0


@dataclass(frozen=True)
class StopRule:
    """When the decoder stops, per row: transformers' stop threshold and length
    ratios (mel frames per input token), plus a hard cap in decoder steps (each
    step writes `reduction_factor` frames) that the minimum cannot exceed."""

    threshold: float = 0.5
    min_len_ratio: float = 0.0
    max_len_ratio: float = 20.0
    max_steps_cap: int = 1000

    def min_steps(self, n_tokens: int, reduction: int) -> int:
        bound = int(n_tokens * self.min_len_ratio / reduction)
        return min(bound, self.max_steps(n_tokens, reduction))

    def max_steps(self, n_tokens: int, reduction: int) -> int:
        """At least one step: transformers' loop always runs once."""
        bound = int(n_tokens * self.max_len_ratio / reduction)
        return max(1, min(bound, self.max_steps_cap))


@dataclass(frozen=True)
class SpeechT5Voice:
    """A loaded SpeechT5 checkpoint: model, vocoder, x-vectors, stop rule."""

    model: Any  # SpeechT5ForTextToSpeech
    vocoder: Any  # SpeechT5HifiGan
    speakers: torch.Tensor  # (voices, speaker_embedding_dim), CPU
    voices: tuple[str, ...]
    rule: StopRule

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Vocoder samples per mel frame."""
        return math.prod(self.vocoder.config.upsample_rates)

    def synthesize(self, rows: Sequence[SpeechT5Row]) -> list[np.ndarray]:
        return synthesize_rows(self.model, self.vocoder, self.speakers, rows, self.rule)

    @classmethod
    def load(
        cls,
        path: str,
        *,
        vocoder: str,
        speakers: str,
        voices: tuple[str, ...] | None,
        torch_dtype: Any,
        device: str,
        threshold: float,
        min_len_ratio: float,
        max_len_ratio: float,
        max_segment_seconds: float,
    ) -> SpeechT5Voice:
        from safetensors.torch import load_file
        from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan

        model = SpeechT5ForTextToSpeech.from_pretrained(path, dtype=torch_dtype)
        vocoder_model = SpeechT5HifiGan.from_pretrained(vocoder, dtype=torch_dtype)
        if vocoder_model.config.model_in_dim != model.config.num_mel_bins:
            raise ValueError(
                f"vocoder {vocoder} reads {vocoder_model.config.model_in_dim} mel "
                f"bins, the model writes {model.config.num_mel_bins}"
            )
        if not Path(speakers).is_file():
            raise ValueError(
                f"SpeechT5 needs speaker x-vectors: {speakers} (safetensors, one "
                f"{model.config.speaker_embedding_dim}-d tensor per voice name)"
            )
        table = load_file(speakers)
        names = voices or tuple(table)
        missing = [name for name in names if name not in table]
        if missing or not names:
            raise ValueError(
                f"voices {list(names)}: no x-vector in {speakers} for {missing}; "
                f"it has {sorted(table)}"
            )
        embeddings = torch.stack([table[name].float().reshape(-1) for name in names])
        if embeddings.shape[1] != model.config.speaker_embedding_dim:
            raise ValueError(
                f"x-vectors in {speakers} are {embeddings.shape[1]}-d, the model "
                f"takes {model.config.speaker_embedding_dim}"
            )
        vocoder_config = vocoder_model.config
        frames = (
            max_segment_seconds
            * vocoder_config.sampling_rate
            / math.prod(vocoder_config.upsample_rates)
        )
        # The prenet's positional table bounds the decoder's steps too.
        cap = min(
            int(frames / model.config.reduction_factor),
            model.config.max_speech_positions - 1,
        )
        return cls(
            model=model.to(device).eval(),
            vocoder=vocoder_model.to(device).eval(),
            speakers=embeddings,
            voices=names,
            rule=StopRule(threshold, min_len_ratio, max_len_ratio, max(1, cap)),
        )


@torch.inference_mode()
def synthesize_rows(
    model: Any,
    vocoder: Any,
    speakers: torch.Tensor,
    rows: Sequence[SpeechT5Row],
    rule: StopRule,
) -> list[np.ndarray]:
    """Float32 waveforms in [-1, 1], one per row, each at its own length."""
    if not rows:
        return []
    config = model.config
    device, dtype = model.device, model.dtype
    reduction, bins = config.reduction_factor, config.num_mel_bins
    lengths = [len(row.input_ids) for row in rows]
    ids = torch.full((len(rows), max(lengths)), config.pad_token_id)
    for i, row in enumerate(rows):
        ids[i, : lengths[i]] = torch.as_tensor(list(row.input_ids))
    mask = (torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]).long()
    ids, mask = ids.to(device), mask.to(device)
    index = torch.tensor([row.speaker for row in rows])
    speaker = speakers[index].to(device, dtype)
    generators = [torch.Generator().manual_seed(row.seed) for row in rows]
    lo = [rule.min_steps(n, reduction) for n in lengths]
    hi = [rule.max_steps(n, reduction) for n in lengths]

    encoded = model.speecht5.encoder(
        input_values=ids, attention_mask=mask, return_dict=True
    ).last_hidden_state
    postnet = model.speech_decoder_postnet
    previous = encoded.new_zeros(len(rows), 1, bins)  # the all-zero start frame
    spectra: list[torch.Tensor] = []  # per step: (B, reduction, bins)
    done: dict[int, torch.Tensor] = {}
    past = None
    step = 0
    while len(done) < len(rows):
        step += 1
        hidden = _prenet_last_frame(
            model.speecht5.decoder.prenet, previous, speaker, step, generators
        )
        out = model.speecht5.decoder.wrapped_decoder(
            hidden_states=hidden,
            attention_mask=None,
            encoder_hidden_states=encoded,
            encoder_attention_mask=mask,
            past_key_values=past,
            use_cache=True,
            return_dict=True,
        )
        past = out.past_key_values
        last = out.last_hidden_state.squeeze(1)
        spectrum = postnet.feat_out(last).view(len(rows), reduction, bins)
        spectra.append(spectrum)
        previous = spectrum[:, -1:, :]
        stop = torch.sigmoid(postnet.prob_out(last)).sum(-1) >= rule.threshold
        for i, stopped in enumerate(stop.tolist()):
            if i not in done and step >= lo[i] and (stopped or step >= hi[i]):
                frames = torch.stack([s[i] for s in spectra]).flatten(0, 1)
                done[i] = postnet.postnet(frames.unsqueeze(0))[0]
    return [vocoder(done[i]).float().cpu().numpy() for i in range(len(rows))]


def _prenet_last_frame(
    prenet: Any,
    previous: torch.Tensor,
    speaker: torch.Tensor,
    step: int,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """`SpeechT5SpeechDecoderPrenet.forward` at the newest position only, with
    each row's dropout mask from its own generator: (B, 1, hidden)."""
    p = prenet.config.speech_decoder_prenet_dropout
    hidden = previous
    for layer in prenet.layers:
        hidden = torch.nn.functional.relu(layer(hidden))
        odds = torch.full(hidden.shape[1:], p)  # one row's (1, units), CPU
        keep = torch.stack([torch.bernoulli(odds, generator=g) for g in generators])
        keep = keep.to(hidden.device, hidden.dtype)
        # transformers' `_consistent_dropout`: keeps where the draw is 1.
        hidden = torch.where(keep == 1, hidden, 0) * 1 / (1 - p)
    hidden = prenet.final_layer(hidden)
    positions = prenet.encode_positions
    hidden = hidden + positions.alpha * positions.pe[:, step - 1 : step]
    speaker = torch.nn.functional.normalize(speaker).unsqueeze(1)
    hidden = torch.cat([hidden, speaker], dim=-1)
    return torch.nn.functional.relu(prenet.speaker_embeds_layer(hidden))
