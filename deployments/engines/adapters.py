"""Adapters (LoRA) loaded at run time: where they may come from.

An admin's `LoadAdapter` names a folder on the replica's filesystem. Only
folders under one of the model's `adapter_dirs` are read, so an API key with
the `admin` scope still cannot make a replica open an arbitrary path.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from deployments import resolve_project_path
from deployments.errors import InvalidArgument, NotFound

__all__ = [
    "AdapterConfig",
    "AdapterUsers",
    "adapter_path",
    "check_removable",
    "name_in_use",
    "not_an_adapter",
    "refuse_control_type",
]

DRAIN_POLL_S = 0.05
MAX_PATH_CHARS = 4096


class AdapterConfig(BaseModel):
    """An adapter loaded with its model; requests select it by `name`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Name requests select it by.")
    path: str = Field(description="Folder (or file) holding the adapter weights.")


def refuse_control_type(control_type: str) -> None:
    """LoadAdapter's `control_type` on a family without ControlNets."""
    if control_type:
        raise InvalidArgument(
            field="control_type",
            value=control_type,
            allowed="empty: ControlNets are for image models",
        )


def adapter_path(path: str, adapter_dirs: Sequence[str]) -> str:
    """The real path of a run-time adapter; it must lie in one of
    `adapter_dirs` (relative ones are the project's) and exist."""
    if not adapter_dirs:
        raise InvalidArgument(
            field="path",
            value=path,
            allowed="nothing: this model's adapter_dirs is empty (no run-time "
            "adapters)",
        )
    if not path or len(path) > MAX_PATH_CHARS or not path.isprintable():
        raise InvalidArgument(
            field="path",
            value=path,
            allowed=f"1..{MAX_PATH_CHARS} printable characters",
        )
    roots = [os.path.realpath(resolve_project_path(d)) for d in adapter_dirs]
    real = os.path.realpath(resolve_project_path(path))
    if not any(real.startswith(root + os.sep) for root in roots):
        raise InvalidArgument(
            field="path", value=path, allowed=f"a folder under {', '.join(roots)}"
        )
    if not os.path.exists(real):
        names = sorted(
            n for root in roots if os.path.isdir(root) for n in os.listdir(root)
        )
        raise NotFound(what="adapter folder", name=path, available=names)
    return real


def name_in_use(name: str) -> InvalidArgument:
    return InvalidArgument(
        field="name", value=name, allowed="a name not in use (unload it first)"
    )


class _Named(Protocol):
    name: str


def check_removable(name: str, configured: Iterable[_Named]) -> None:
    """An adapter the config loads at start stays: the config is its source."""
    if name in {adapter.name for adapter in configured}:
        raise InvalidArgument(
            field="name",
            value=name,
            allowed="an adapter loaded at run time (this one is in the model's "
            "config: remove it there)",
        )


def not_an_adapter(
    path: str, error: Exception, what: str = "a LoRA of this model"
) -> InvalidArgument:
    """What a backend's refusal of an adapter folder becomes on the wire."""
    return InvalidArgument(field="path", value=path, allowed=what, reason=str(error))


class AdapterUsers:
    """Requests using each adapter, so one is removed only once they finish."""

    def __init__(self) -> None:
        self._count: Counter[str] = Counter()

    def take(self, names: Iterable[str]) -> tuple[str, ...]:
        """Count a request as using `names` until `release` of the result."""
        held = tuple(n for n in names if n)
        self._count.update(held)
        return held

    def release(self, held: tuple[str, ...]) -> None:
        self._count.subtract(held)

    @contextmanager
    def hold(self, names: Iterable[str]) -> Iterator[None]:
        held = self.take(names)
        try:
            yield
        finally:
            self.release(held)

    async def drained(self, name: str) -> None:
        """Return once no request uses `name` (new ones no longer can)."""
        while self._count[name] > 0:
            await asyncio.sleep(DRAIN_POLL_S)
        del self._count[name]
