"""The sync and asyncio clients expose the same methods, taking the same parameters."""

from __future__ import annotations

import inspect

import pytest

import maestro
import maestro.client
import maestro.errors
from maestro import AsyncMaestroClient, MaestroClient


def _public(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    )


def _parameters(function: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_both_clients_have_the_same_public_methods() -> None:
    assert _public(MaestroClient) == _public(AsyncMaestroClient)
    assert {"health", "wait_until_serving"} <= set(_public(AsyncMaestroClient))


@pytest.mark.parametrize("name", _public(MaestroClient))
def test_each_method_takes_the_same_parameters(name: str) -> None:
    sync, aio = getattr(MaestroClient, name), getattr(AsyncMaestroClient, name)
    assert _parameters(sync) == _parameters(aio)
    assert not inspect.iscoroutinefunction(sync)
    assert inspect.iscoroutinefunction(aio) or inspect.isasyncgenfunction(aio)


def test_one_error_class_wherever_it_is_imported_from() -> None:
    assert maestro.MaestroRpcError is maestro.errors.MaestroRpcError
    assert maestro.client.MaestroRpcError is maestro.errors.MaestroRpcError
