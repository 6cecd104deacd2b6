"""SIGTERM (and SIGINT) unwind like Ctrl-C, so `finally` blocks stop stacks."""

from __future__ import annotations

import signal
from typing import Any


def interrupt(signum: int, frame: Any) -> None:
    """A signal handler that raises KeyboardInterrupt, as Ctrl-C would."""
    raise KeyboardInterrupt(f"signal {signum}")


def unwind_on_signals() -> None:
    """SIGTERM raises KeyboardInterrupt; SIGINT does again even where the
    shell that started the process in the background made it ignore SIGINT."""
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
