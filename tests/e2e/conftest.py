"""The session's real stack (`serve run` on serve_config.yaml) and its clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro import MaestroClient
from tests.helpers.serve_run import ServeRun, serve_run


@pytest.fixture(scope="session")
def stack(
    demo_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeRun]:
    """The running stack (target, ports, log, spans file), once text is SERVING."""
    with serve_run(tmp_path_factory.mktemp("serve")) as run:
        yield run


@pytest.fixture(scope="session")
def server(stack: ServeRun) -> str:
    """The stack's gRPC target."""
    return stack.target


@pytest.fixture
def client(server: str) -> Iterator[MaestroClient]:
    with MaestroClient(server, timeout=60) as c:
        yield c
