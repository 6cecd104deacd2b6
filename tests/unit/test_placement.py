"""Why a family waits (from Serve's status), and how the studio reports it. No Ray."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from grpc_health.v1 import health_pb2

from deployments import placement
from deployments.studio import StudioDeployment
from deployments.studio import deployment as studio_deployment
from maestro.v1 import models_pb2

RAY_MESSAGE = (
    "Deployment 'Image' in application 'image' has 1 replicas that have taken "
    "more than 30s to be scheduled. ... Resources required for each replica: "
    '{"CPU": 2.0, "GPU": 1.0}, total resources available: {"CPU": 12.9}.'
)


def _app(status: str, deployments: dict[str, tuple[str, str]], message: str = ""):
    return SimpleNamespace(
        status=status,
        message=message,
        deployments={
            name: SimpleNamespace(status=s, message=m)
            for name, (s, m) in deployments.items()
        },
    )


def test_waiting_reasons_name_the_family_and_rays_reason() -> None:
    status = SimpleNamespace(
        applications={
            "text": _app("RUNNING", {"Text": ("HEALTHY", "")}),
            "image": _app("DEPLOYING", {"Image": ("UPDATING", RAY_MESSAGE)}),
            "voice": _app("DEPLOYING", {"Voice": ("UPDATING", "")}),
        }
    )
    reasons = placement.waiting_reasons(status, ["text", "image", "voice", "studio"])
    assert set(reasons) == {"image", "voice", "studio"}
    assert reasons["image"].startswith("DEPLOYING; Image UPDATING: Deployment 'Image'")
    assert '"GPU": 1.0' in reasons["image"]
    assert "replicas starting" in reasons["voice"]
    assert reasons["studio"] == "not deployed"


class _Family:
    """A family that is up: answers ListModels and Check at once."""

    def __init__(self, family: int, model: str) -> None:
        info = models_pb2.ModelInfo(id=model, family=family, ready=True)
        serving = health_pb2.HealthCheckResponse.SERVING
        self.replies = {
            "ListModels": models_pb2.ListModelsResponse(models=[info]),
            "Check": health_pb2.HealthCheckResponse(status=serving),
        }

    def __getattr__(self, method: str) -> Any:
        reply = self.replies[method]

        async def answer() -> Any:
            return reply

        class Response:
            def remote(self, request: Any) -> Any:
                return _Awaitable(answer())

        return Response()


class _Awaitable:
    def __init__(self, coroutine: Any) -> None:
        self._coroutine = coroutine

    def __await__(self) -> Any:
        return self._coroutine.__await__()

    def cancel(self) -> None:
        self._coroutine.close()


class _Pending:
    """A family with no replica: calls never return (until the probe's timeout)."""

    def __getattr__(self, method: str) -> Any:
        import asyncio

        class Response:
            def remote(self, request: Any) -> Any:
                return _Awaitable(asyncio.sleep(3600))

        return Response()


async def test_studio_reports_the_waiting_family_and_why(monkeypatch) -> None:
    async def waiting(apps: list[str]) -> dict[str, str]:
        assert apps == ["image"]  # only the families that did not answer
        return {"image": f"DEPLOYING; Image UPDATING: {RAY_MESSAGE}"}

    monkeypatch.setattr(studio_deployment, "waiting_families", waiting)
    cls = StudioDeployment.func_or_class
    studio = cls(
        {"probe_timeout_s": 0.2},
        _Family(models_pb2.FAMILY_TEXT, "t"),
        _Pending(),
        _Family(models_pb2.FAMILY_VOICE, "v"),
    )
    (info,) = (await studio.ListModels(models_pb2.ListModelsRequest())).models
    assert not info.ready
    assert info.status_message.startswith("waiting for image: DEPLOYING")
    assert (
        info.stats["image"].startswith("waiting: DEPLOYING")
        and "GPU" in (info.stats["image"])
    )
    assert info.stats["voice"].startswith("reachable, ready")
    health = await studio.Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_studio_handles_do_not_require_the_family_to_exist_yet(monkeypatch) -> None:
    """Serve may start the studio before Voice exists: no KeyError at start."""
    calls = []

    def get_deployment_handle(name: str, app_name: str, _check_exists: bool = True):
        calls.append((name, app_name, _check_exists))
        if _check_exists:
            raise KeyError(f"Deployment {name} does not exist.")
        return SimpleNamespace(name=name)

    monkeypatch.setattr(
        studio_deployment.serve, "get_deployment_handle", get_deployment_handle
    )
    studio = StudioDeployment.func_or_class({})
    assert studio.studio.voice.name == "Voice"
    assert calls == [
        ("Text", "text", False),
        ("Image", "image", False),
        ("Voice", "voice", False),
    ]


def test_replica_placement_is_empty_without_ray() -> None:
    import ray

    if ray.is_initialized():  # pragma: no cover - unit tests never start Ray
        pytest.skip("Ray is running in this process")
    assert placement.replica_placement() == {}
