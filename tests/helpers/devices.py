"""What accelerators this machine has, asked once."""

from __future__ import annotations

import functools

__all__ = ["cuda_available"]


@functools.cache
def cuda_available() -> bool:
    """A CUDA device torch can use (torch is imported only when asked)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
