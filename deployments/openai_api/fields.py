"""Typed reads of an OpenAI-style JSON body, each naming its field on error.

The HTTP layer only checks that a field has the JSON type the wire contract
says; ranges and limits stay with the family code that checks the same field
arriving over gRPC, so both transports answer a bad value the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployments.errors import InvalidArgument

__all__ = ["Body", "reject_unsupported"]

_MISSING = object()


class Body:
    """A parsed JSON object; `get_*` return None for an absent or null field."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def _get(self, name: str) -> Any:
        value = self.data.get(name, _MISSING)
        return None if value is _MISSING or value is None else value

    def string(self, name: str, default: str = "") -> str:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InvalidArgument(field=name, value=value, allowed="a string")
        return value

    def integer(self, name: str, bits: int = 64) -> int | None:
        """A signed integer that fits the proto field's `bits` (32 or 64)."""
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(field=name, value=value, allowed="an integer")
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise InvalidArgument(
                field=name, value=value, allowed=f"a {bits}-bit signed integer"
            )
        return value

    def number(self, name: str) -> float | None:
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(field=name, value=value, allowed="a number")
        return float(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidArgument(field=name, value=value, allowed="true or false")
        return value

    def strings(self, name: str) -> list[str]:
        """A string or a list of strings (OpenAI's `stop`), as a list."""
        value = self._get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise InvalidArgument(
            field=name, value=value, allowed="a string or a list of strings"
        )

    def objects(self, name: str) -> list[Mapping[str, Any]]:
        value = self._get(name)
        if value is None:
            return []
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
        raise InvalidArgument(field=name, value=value, allowed="a list of objects")

    def object(self, name: str) -> Body:
        value = self._get(name)
        if value is None:
            return Body({})
        if not isinstance(value, dict):
            raise InvalidArgument(field=name, value=value, allowed="an object")
        return Body(value)

    def has(self, name: str) -> bool:
        return self._get(name) is not None


def reject_unsupported(body: Body, unsupported: Mapping[str, str]) -> None:
    """OpenAI fields Maestro does not serve: a set one is a clear 400, not a
    silently different answer. `unsupported` maps a field to what to use."""
    for name, instead in unsupported.items():
        value = body.data.get(name)
        if value not in (None, False, [], {}, ""):
            raise InvalidArgument(
                field=name, value=value, reason="not supported", allowed=instead
            )
