"""Shared fixtures: the demo checkpoints and free ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "demo"


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The offline demo checkpoints (built once; `make models` does the same)."""
    from models.build_demo import FAMILIES

    for name, build in FAMILIES.items():
        build(DEMO / name)
    return DEMO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
