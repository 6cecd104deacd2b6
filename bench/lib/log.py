"""Progress on stderr (stdout carries results) and the stamp results are named by."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the results."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def utc_stamp() -> str:
    """The UTC timestamp every result file is named by (`20261126T152235Z`)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
