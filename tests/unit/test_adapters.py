"""Run-time adapters: which folders an admin's LoadAdapter may make a replica
read, and the wait before one is removed."""

from __future__ import annotations

import asyncio

import pytest

from deployments.engines.adapters import AdapterUsers, adapter_path
from deployments.errors import InvalidArgument, NotFound
from tests.helpers import ROOT

LORAS = "models/demo/image/loras"


@pytest.mark.parametrize(
    "path",
    ["", "a\x00b", "x" * 5000, "models/demo/text", "/etc/passwd", f"{LORAS}/../.."],
)
def test_only_folders_under_adapter_dirs_are_read(path: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        adapter_path(path, [LORAS])
    assert "path" in str(error.value)


def test_no_adapter_dirs_means_no_run_time_adapters() -> None:
    with pytest.raises(InvalidArgument, match="adapter_dirs is empty"):
        adapter_path(f"{LORAS}/demo-style", [])


def test_an_existing_folder_resolves_and_a_missing_one_is_not_found(
    demo_models: object,
) -> None:
    real = adapter_path(f"{LORAS}/demo-style", [LORAS])
    assert real == str((ROOT / LORAS / "demo-style").resolve())
    with pytest.raises(NotFound, match="available: demo-style"):
        adapter_path(f"{LORAS}/nope", [LORAS])


async def test_removal_waits_for_the_requests_using_it() -> None:
    users = AdapterUsers()
    held = users.take(["style", ""])
    drained = asyncio.create_task(users.drained("style"))
    await asyncio.sleep(0.1)
    assert not drained.done()  # a request still uses it
    users.release(held)
    await asyncio.wait_for(drained, 1)
