"""Where the repository and its offline demo checkpoints are."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO", "ROOT", "build_demo_models"]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"


def build_demo_models() -> Path:
    """Build every family's demo checkpoint under DEMO (`make models` does too)."""
    from models.build_demo import FAMILIES

    for name, build in FAMILIES.items():
        build(DEMO / name)
    return DEMO
