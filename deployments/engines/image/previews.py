"""Cheap progress previews: latents -> low-res RGB by one linear map.

A preview costs a matrix product, not a VAE decode, and comes out at
1/vae-scale of the image size. The maps are the well-known per-family
latent -> RGB factors (ComfyUI's `latent_formats`): SD and SDXL have 4
latent channels, Stable Diffusion 3 has 16 (and a bias). A latent space not
listed here gets a grey look at the channel mean instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LatentRGB", "latent_previews", "latent_rgb"]

# (factors: channels x 3, bias: 3)
LatentRGB = tuple[np.ndarray, np.ndarray]

_SD = np.array(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ],
    dtype=np.float32,
)
_SDXL = np.array(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ],
    dtype=np.float32,
)
_SD3 = np.array(
    [
        [-0.0922, -0.0175, 0.0749],
        [0.0311, 0.0633, 0.0954],
        [0.1994, 0.0927, 0.0458],
        [0.0856, 0.0339, 0.0902],
        [0.0587, 0.0272, -0.0496],
        [-0.0006, 0.1104, 0.0309],
        [0.0978, 0.0306, 0.0427],
        [-0.0042, 0.1038, 0.1358],
        [-0.0194, 0.0020, 0.0669],
        [-0.0488, 0.0130, -0.0268],
        [0.0922, 0.0988, 0.0951],
        [-0.0278, 0.0524, -0.0542],
        [0.0332, 0.0456, 0.0895],
        [-0.0069, -0.0030, -0.0810],
        [-0.0596, -0.0465, -0.0293],
        [-0.1448, -0.1463, -0.1189],
    ],
    dtype=np.float32,
)
_SD3_BIAS = np.array([0.2394, 0.2135, 0.1925], dtype=np.float32)
_NO_BIAS = np.zeros(3, dtype=np.float32)


def latent_rgb(pipe: Any) -> LatentRGB | None:
    """The map for `pipe`'s latent space; None: not known (channel mean)."""
    name = type(pipe).__name__
    channels = int(pipe.vae.config.latent_channels)
    if name.startswith("StableDiffusion3") and channels == len(_SD3):
        return _SD3, _SD3_BIAS
    if channels == len(_SD):
        return (_SDXL if "XL" in name else _SD), _NO_BIAS
    return None


def latent_previews(latents: np.ndarray, rgb: LatentRGB | None) -> list[np.ndarray]:
    """HxWx3 uint8 previews of `latents` (batch x channels x h x w)."""
    if rgb is None or latents.shape[1] != len(rgb[0]):
        grey = latents.mean(axis=1, keepdims=True)
        out = np.repeat(np.moveaxis(grey, 1, -1), 3, axis=-1)
    else:
        factors, bias = rgb
        out = np.einsum("bchw,cr->bhwr", latents, factors) + bias
    return list(((out + 1.0) * 127.5).clip(0, 255).astype(np.uint8))
