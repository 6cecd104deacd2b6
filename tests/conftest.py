"""Session fixtures and hooks; the helpers they use live in tests/helpers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro import envs
from tests.helpers import build_demo_models
from tests.helpers.devices import cuda_available
from tests.helpers.redis_server import redis_available, redis_server


@pytest.fixture(scope="session", autouse=True)
def api_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This session's own local key: every stack the tests start registers it
    and every client they make sends it; nothing touches ~/.maestro."""
    key = "mae_test_" + secrets.token_urlsafe(16)
    key_file = tmp_path_factory.mktemp("maestro-home") / "api_key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(envs.MAESTRO_API_KEY.name, key)
        patch.setenv(envs.MAESTRO_API_KEY_FILE.name, str(key_file))
        yield key


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The offline demo checkpoints (built once; `make models` does the same)."""
    return build_demo_models()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for this session (`.ci/run` installs Debian's)."""
    if not redis_available():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Tests marked `gpu` are skipped where torch sees no CUDA device."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_tests and not cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu_tests:
            item.add_marker(skip)
