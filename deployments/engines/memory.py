"""What a loaded model holds in memory, for ListModels and the registry's
memory budget (`max_loaded_bytes`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["checkpoint_bytes", "module_bytes"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def module_bytes(modules: Iterable[Any]) -> int:
    """Bytes of the parameters and buffers of torch modules (shared tensors,
    such as components two pipelines share, count once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def checkpoint_bytes(path: str) -> int:
    """Size of the weight files under a local checkpoint (0 for a hub id):
    the estimate of a model's memory before its first load."""
    root = Path(path)
    if not root.exists():
        return 0
    files = [root] if root.is_file() else root.rglob("*")
    return sum(f.stat().st_size for f in files if f.suffix in WEIGHT_SUFFIXES)
