"""Result dataclasses to and from the JSON documents the suite writes.

A result's JSON form is `dataclasses.asdict`; reading one back keeps only
the fields the class has, and turns the string keys JSON made of integer
ones (concurrencies) back into integers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(result: Any) -> dict[str, Any]:
    """The JSON-ready form of a result dataclass."""
    return dataclasses.asdict(result)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """`cls` from a dict that may hold more keys than `cls` has fields."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def int_keys(mapping: dict[Any, T]) -> dict[Any, T]:
    """`{"8": x}` (as JSON has it) back to `{8: x}`; other keys as they are."""
    return {
        int(k) if isinstance(k, str) and k.isdigit() else k: v
        for k, v in mapping.items()
    }
