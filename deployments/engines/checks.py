"""Range and length checks on request fields, written once for every family.

Each raises `InvalidArgument` naming the field, the value it got and the
allowed range, in one notation: `[lo, hi]` / `(lo, hi]` for real numbers,
`lo..hi` for counts, `at most N characters` for text.
"""

from __future__ import annotations

import math
from typing import Any

from deployments.errors import InvalidArgument

__all__ = ["check_count", "check_length", "check_range"]

_GOT = object()  # "show the value checked" (the default)


def check_range(
    field: str,
    value: float | None,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    allowed: str | None = None,
) -> None:
    """`value` in [lo, hi] (or (lo, hi]); None skips; NaN and inf never pass."""
    if value is None:
        return
    below = value <= lo if lo_open else value < lo
    if not math.isfinite(value) or below or value > hi:
        bracket = "(" if lo_open else "["
        raise InvalidArgument(
            field=field, value=value, allowed=allowed or f"{bracket}{lo}, {hi}]"
        )


def check_count(
    field: str,
    value: int,
    lo: int,
    hi: int,
    *,
    shown: Any = _GOT,
    allowed: str | None = None,
) -> None:
    """An integer count in lo..hi; `shown` is what the client sent, when the
    checked value is a default filled in for it."""
    if not lo <= value <= hi:
        raise InvalidArgument(
            field=field,
            value=value if shown is _GOT else shown,
            allowed=allowed or f"{lo}..{hi}",
        )


def check_length(
    field: str, text: str, max_chars: int, *, allowed: str | None = None
) -> None:
    """At most `max_chars` characters."""
    if len(text) > max_chars:
        raise InvalidArgument(
            field=field,
            value=f"{len(text)} characters",
            allowed=allowed or f"at most {max_chars} characters",
        )
