"""Shared fixtures: the demo checkpoints and free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.launch import free_port

__all__ = ["DEMO", "ROOT", "free_port"]

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "demo"


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The offline demo checkpoints (built once; `make models` does the same)."""
    from models.build_demo import FAMILIES

    for name, build in FAMILIES.items():
        build(DEMO / name)
    return DEMO
