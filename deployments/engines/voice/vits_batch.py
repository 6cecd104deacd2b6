"""Batch-invariant VITS inference over transformers' `VitsModel` modules.

`VitsModel.forward` cannot batch requests the way the voice engine needs:

- it takes one `speaker_id` and one `speaking_rate` for the whole batch;
- it draws its noise from torch's global RNG (`torch.randn` for the durations,
  `torch.randn_like` for the prior), so a row's noise depends on the batch's
  size and padding, and no per-request seed is possible;
- the HiFi-GAN decoder convolves unmasked padding, so the last frames of a
  short row change with the longest row in its batch.

`synthesize_rows` runs the same modules (text encoder, duration predictor,
flow, decoder) with per-row speakers and speaking rates, draws every row's
noise from its own generator seeded by the row's seed, at the row's own
length (so padding never shifts a row's noise), and multiplies by the row's
time mask before every decoder convolution (so padding reads as the zeros an
unpadded convolution would see). A row's audio therefore does not depend on
what it is batched with. Exactness: in float32 on CPU the valid samples match
unbatched synthesis to ~1e-6 (convolution kernels may sum in a different
order for different shapes); the engine tests hold it to 1e-4.

For one row the result equals `VitsModel.forward` after `torch.manual_seed`
with the same seed (tests check this), so the module follows transformers'
numerics rather than reinventing VITS. Noise is drawn on the CPU and moved to
the model's device, so a seed gives the same noise on CPU and GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional

__all__ = ["VitsRow", "synthesize_rows"]


@dataclass(frozen=True)
class VitsRow:
    """One utterance of a batch: token ids (blanks included) and its controls."""

    input_ids: Sequence[int]
    seed: int
    speaker_id: int | None = None
    length_scale: float = 1.0  # 1 / speaking_rate


@torch.inference_mode()
def synthesize_rows(model: Any, rows: Sequence[VitsRow]) -> list[np.ndarray]:
    """Float32 waveforms in [-1, 1], one per row, each at its own length."""
    if not rows:
        return []
    config = model.config
    device = model.device
    dtype = model.text_encoder.embed_tokens.weight.dtype
    generators = [torch.Generator().manual_seed(row.seed) for row in rows]
    lengths_in = [len(row.input_ids) for row in rows]
    ids = torch.zeros((len(rows), max(lengths_in)), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : lengths_in[i]] = torch.as_tensor(list(row.input_ids))
    attention_mask = _length_mask(lengths_in).to(device)
    ids = ids.to(device)
    in_mask = attention_mask.unsqueeze(-1).to(dtype)  # (B, T_in, 1)
    speakers = _speaker_embeddings(model, rows)

    encoded = model.text_encoder(
        input_ids=ids,
        padding_mask=in_mask,
        attention_mask=attention_mask,
        return_dict=True,
    )
    hidden = encoded.last_hidden_state.transpose(1, 2)
    in_mask = in_mask.transpose(1, 2)  # (B, 1, T_in)

    noise = _row_noise(generators, 2, lengths_in).to(device, dtype)
    if config.use_stochastic_duration_prediction:
        log_duration = _stochastic_durations(
            model.duration_predictor,
            hidden,
            in_mask,
            speakers,
            noise * config.noise_scale_duration,
        )
    else:
        log_duration = model.duration_predictor(hidden, in_mask, speakers)
    scale = torch.tensor([row.length_scale for row in rows], device=device, dtype=dtype)
    duration = torch.ceil(torch.exp(log_duration) * in_mask * scale.view(-1, 1, 1))
    frames = torch.clamp_min(torch.sum(duration, [1, 2]), 1).long()

    out_mask = _length_mask(frames.tolist()).to(device, dtype).unsqueeze(1)
    alignment = _alignment(duration, in_mask, out_mask)  # (B, T_out, T_in)
    means = torch.matmul(alignment, encoded.prior_means).transpose(1, 2)
    log_vars = torch.matmul(alignment, encoded.prior_log_variances).transpose(1, 2)
    prior_noise = _row_noise(
        generators, means.shape[1], frames.tolist(), time_major=True
    )
    prior = means + prior_noise.to(device, dtype) * torch.exp(log_vars) * (
        config.noise_scale
    )
    latents = model.flow(prior, out_mask, speakers, reverse=True)
    waveform = _masked_decode(model.decoder, latents * out_mask, out_mask, speakers)
    hop = math.prod(config.upsample_rates)
    audio = waveform.float().cpu().numpy()
    return [audio[i, : n * hop].copy() for i, n in enumerate(frames.tolist())]


def _length_mask(lengths: Sequence[int]) -> torch.Tensor:
    positions = torch.arange(max(lengths))
    return (positions.unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()


def _row_noise(
    generators: Sequence[torch.Generator],
    channels: int,
    lengths: Sequence[int],
    *,
    time_major: bool = False,
) -> torch.Tensor:
    """(B, channels, max length) normal noise, zero past each row's length.

    Each row draws exactly `channels x its length` values from its own
    generator: torch's CPU normal sampler fills in blocks of 16 and redraws the
    tail, so drawing more (padded) values would change the first ones too.
    `time_major` draws into a (time, channel)-strided tensor, exactly as
    transformers' `randn_like` does on its transposed prior tensor (torch
    samples non-contiguous tensors element by element, a different stream
    from the blocked contiguous path).
    """
    out = torch.zeros((len(lengths), channels, max(lengths)))
    for i, (generator, n) in enumerate(zip(generators, lengths, strict=True)):
        if time_major:
            strided = torch.empty((n, channels)).T
            out[i, :, :n] = strided.normal_(generator=generator)
        else:
            out[i, :, :n] = torch.randn((channels, n), generator=generator)
    return out


def _speaker_embeddings(model: Any, rows: Sequence[VitsRow]) -> torch.Tensor | None:
    if model.config.num_speakers <= 1:
        return None
    ids = torch.tensor([row.speaker_id or 0 for row in rows], device=model.device)
    return model.embed_speaker(ids).unsqueeze(-1)  # (B, E, 1)


def _stochastic_durations(
    predictor: Any,
    inputs: torch.Tensor,
    mask: torch.Tensor,
    speakers: torch.Tensor | None,
    noise: torch.Tensor,
) -> torch.Tensor:
    """`VitsStochasticDurationPredictor.forward(reverse=True)` with given noise."""
    inputs = predictor.conv_pre(inputs)
    if speakers is not None:
        inputs = inputs + predictor.cond(speakers)
    inputs = predictor.conv_dds(inputs, mask)
    inputs = predictor.conv_proj(inputs) * mask
    flows = list(reversed(predictor.flows))
    flows = flows[:-2] + [flows[-1]]  # transformers drops a no-op flow here too
    latents = noise
    for flow in flows:
        latents = torch.flip(latents, [1])
        latents, _ = flow(latents, mask, global_conditioning=inputs, reverse=True)
    log_duration, _ = torch.split(latents, [1, 1], dim=1)
    return log_duration


def _alignment(
    duration: torch.Tensor, in_mask: torch.Tensor, out_mask: torch.Tensor
) -> torch.Tensor:
    """Monotonic hard alignment (B, T_out, T_in) from per-token frame counts."""
    attn_mask = in_mask.unsqueeze(2) * out_mask.unsqueeze(-1)
    batch, _, t_out, t_in = attn_mask.shape
    cumulative = torch.cumsum(duration, -1).view(batch * t_in, 1)
    frames = torch.arange(t_out, dtype=duration.dtype, device=duration.device)
    valid = (frames.unsqueeze(0) < cumulative).to(attn_mask.dtype)
    valid = valid.view(batch, t_in, t_out)
    starts = valid - functional.pad(valid, [0, 0, 1, 0, 0, 0])[:, :-1]
    return (starts.unsqueeze(1).transpose(2, 3) * attn_mask).squeeze(1)


def _masked_decode(
    decoder: Any,
    spectrogram: torch.Tensor,
    mask: torch.Tensor,
    speakers: torch.Tensor | None,
) -> torch.Tensor:
    """`VitsHifiGan.forward`, with padding zeroed before every convolution."""
    slope = decoder.config.leaky_relu_slope
    hidden = decoder.conv_pre(spectrogram)
    if speakers is not None:
        hidden = hidden + decoder.cond(speakers)
    hidden = hidden * mask
    for i, rate in enumerate(decoder.config.upsample_rates):
        hidden = decoder.upsampler[i](functional.leaky_relu(hidden, slope))
        mask = mask.repeat_interleave(rate, dim=2)
        hidden = _fit(hidden, mask.shape[-1]) * mask
        blocks = decoder.resblocks[
            i * decoder.num_kernels : (i + 1) * decoder.num_kernels
        ]
        total = sum(_masked_resblock(block, hidden, mask, slope) for block in blocks)
        hidden = total / decoder.num_kernels
    # transformers uses leaky_relu's default slope (0.01) here, not the config's.
    hidden = decoder.conv_post(functional.leaky_relu(hidden))
    return torch.tanh(hidden).squeeze(1)


def _masked_resblock(
    block: Any, hidden: torch.Tensor, mask: torch.Tensor, slope: float
) -> torch.Tensor:
    for conv1, conv2 in zip(block.convs1, block.convs2, strict=True):
        residual = hidden
        hidden = conv1(functional.leaky_relu(hidden, slope)) * mask
        hidden = conv2(functional.leaky_relu(hidden, slope)) * mask
        hidden = hidden + residual
    return hidden


def _fit(hidden: torch.Tensor, length: int) -> torch.Tensor:
    """Trim or zero-pad the time axis (odd kernel-rate pairs miss by a sample)."""
    if hidden.shape[-1] >= length:
        return hidden[..., :length]
    return functional.pad(hidden, [0, length - hidden.shape[-1]])
