"""What the CLI prints while a stream waits for its model to load."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["waiting_for_model"]


def waiting_for_model(message: Any) -> bool:
    """True (after saying so on stderr) when a stream message only reports
    that its model is still loading (`ModelLoad`); it carries no output."""
    if not message.HasField("model_load"):
        return False
    load = message.model_load
    print(
        f"waiting for model {load.model} ({load.state}, {load.waited_seconds:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return True
