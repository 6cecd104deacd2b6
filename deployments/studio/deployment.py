"""The studio's Ray Serve deployment: the ingress of application `studio`.

It holds no model and needs almost no CPU (`num_cpus: 0.1`): it resolves
`DeploymentHandle`s to the family deployments (the same replicas that serve
their own RPCs, never a second copy of a model) and runs `Studio` on them.
Handles can be passed in instead, which is how tests use fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from grpc_health.v1 import health_pb2
from ray import serve

from deployments.errors import InvalidArgument
from deployments.health import health_response
from deployments.ingress import stream_rpc, unary_rpc
from deployments.placement import waiting_families
from deployments.studio.cache import ComposeCache
from deployments.studio.children import Handle, InFlight, call_child
from deployments.studio.compose import Studio
from deployments.studio.config import FamilyRef, StudioAppConfig
from maestro.models_client import default_models
from maestro.v1 import models_pb2, studio_pb2


def _no_models() -> InvalidArgument:
    """Model management goes to the family that holds the model."""
    return InvalidArgument(
        field="application",
        allowed="text, image or voice: the studio holds no models of its own",
    )


def _refused(name: str, response_type: Any) -> Any:
    """ModelService's `name`, answered with `_no_models()`."""

    async def refuse(self: Any, request: Any, request_id: str) -> Any:
        raise _no_models()

    refuse.__name__ = refuse.__qualname__ = name  # the RPC's name, for spans
    return unary_rpc(response_type)(refuse)


__all__ = ["StudioDeployment"]

logger = logging.getLogger("maestro.studio")
SERVICES = ("maestro.v1.StudioService", "maestro.v1.ModelService")
FAMILIES = ("text", "image", "voice")
_SERVING = health_pb2.HealthCheckResponse.SERVING


def _handle(ref: FamilyRef) -> Handle:
    # Serve deploys the applications of one config concurrently, so the studio
    # may start before a family's deployment exists; checking for it here
    # would crash the replica once (`KeyError: Deployment Voice does not
    # exist`). An unchecked handle resolves the deployment when it is called:
    # calls wait until the family has a replica, bounded by their deadlines.
    return serve.get_deployment_handle(
        ref.deployment, app_name=ref.app, _check_exists=False
    )


@serve.deployment(name="Studio", ray_actor_options={"num_cpus": 0.1})
class StudioDeployment:
    """Serves StudioService, ModelService and Health for the studio."""

    def __init__(
        self,
        config: dict[str, Any],
        text: Handle | None = None,
        image: Handle | None = None,
        voice: Handle | None = None,
    ) -> None:
        self.config = StudioAppConfig.model_validate(config)
        c = self.config
        if not (text and image and voice):
            logger.info(
                "studio chains %s; calls wait until each family has a replica",
                ", ".join(
                    f"{r.app}/{r.deployment}" for r in (c.text, c.image, c.voice)
                ),
            )
        self.studio = Studio(
            text or _handle(c.text),
            image or _handle(c.image),
            voice or _handle(c.voice),
            c,
        )
        families = {
            "text": self.studio.text,
            "image": self.studio.image,
            "voice": self.studio.voice,
        }
        self.cache = ComposeCache(c.cache, families, c.plan, c.probe_timeout_s)

    async def __del__(self) -> None:
        # Ray Serve awaits this when the replica stops (see EngineIngress).
        cache = getattr(self, "cache", None)
        if cache is not None:
            await cache.responses.close()

    @stream_rpc
    async def Compose(
        self, request: studio_pb2.ComposeRequest, request_id: str
    ) -> AsyncIterator[studio_pb2.ComposeResponse]:
        key = await self.cache.key(request)
        events = self.cache.stream(
            key, request_id, lambda: self.studio.compose(request, request_id)
        )
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    # Model management belongs to the family holding the model.
    LoadModel = _refused("LoadModel", models_pb2.LoadModelResponse)
    UnloadModel = _refused("UnloadModel", models_pb2.UnloadModelResponse)
    LoadAdapter = _refused("LoadAdapter", models_pb2.LoadAdapterResponse)
    UnloadAdapter = _refused("UnloadAdapter", models_pb2.UnloadAdapterResponse)

    @unary_rpc(models_pb2.CacheStatsResponse)
    async def CacheStats(
        self, request: models_pb2.CacheStatsRequest, request_id: str
    ) -> models_pb2.CacheStatsResponse:
        """The studio's own (Compose) cache; each family answers for its own."""
        stats = await self.cache.responses.stats_message(models_pb2.FAMILY_STUDIO)
        return models_pb2.CacheStatsResponse(stats=stats)

    @unary_rpc(models_pb2.ClearCacheResponse)
    async def ClearCache(
        self, request: models_pb2.ClearCacheRequest, request_id: str
    ) -> models_pb2.ClearCacheResponse:
        return await self.cache.responses.clear_message()

    @unary_rpc(models_pb2.ListModelsResponse)
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, request_id: str
    ) -> models_pb2.ListModelsResponse:
        """Family STUDIO, no model: which families it chains, and their state."""
        answers = await self._probe("ListModels", models_pb2.ListModelsRequest())
        stats = {"chains": "text -> image + voice (per scene, concurrently)"}
        ready = True
        waiting = await self._waiting(answers)
        for family, answer in zip(FAMILIES, answers, strict=True):
            if isinstance(answer, BaseException):
                stats[family] = (
                    f"waiting: {waiting[family]}"
                    if family in waiting
                    else f"unreachable: {type(answer).__name__}"
                )
                ready = False
                continue
            models = list(answer.models)
            # The default model serves calls that name none; the others load
            # on demand, so "not loaded yet" is not "not ready".
            defaults = default_models(models)
            family_ready = bool(defaults) and all(m.ready for m in defaults)
            ready = ready and family_ready
            ids = ", ".join(m.id for m in models) or "no model"
            stats[family] = (
                f"reachable, {'ready' if family_ready else 'not ready'}: {ids}"
            )
        stats["running_compositions"] = str(self.studio.running)
        limits = self.config.plan
        message = "" if ready else "a chained family is not ready"
        if waiting:
            message = "waiting for " + "; ".join(
                f"{family}: {reason}" for family, reason in waiting.items()
            )
        return models_pb2.ListModelsResponse(
            models=[
                models_pb2.ModelInfo(
                    id="studio",
                    family=models_pb2.FAMILY_STUDIO,
                    engine="maestro studio (no model; DeploymentHandles)",
                    device="none",
                    ready=ready,
                    status_message=message,
                    limits={
                        "num_scenes": f"1..{limits.max_scenes}",
                        "default_scenes": str(limits.default_scenes),
                        "max_brief_chars": str(limits.max_brief_chars),
                        "max_style_chars": str(limits.max_style_chars),
                        "narration_chars": str(limits.narration_chars),
                        "image_prompt_chars": str(limits.image_prompt_chars),
                    },
                    stats=stats,
                )
            ]
        )

    @unary_rpc(health_pb2.HealthCheckResponse)
    async def Check(
        self, request: health_pb2.HealthCheckRequest, request_id: str
    ) -> health_pb2.HealthCheckResponse:
        """SERVING when every chained family answers SERVING."""
        answers = await self._probe("Check", health_pb2.HealthCheckRequest())
        ready = all(
            not isinstance(a, BaseException) and a.status == _SERVING for a in answers
        )
        return health_response(request, services=SERVICES, ready=ready)

    async def _waiting(self, answers: list[Any]) -> dict[str, str]:
        """Why the families that did not answer are not running (Serve status)."""
        c = self.config
        refs = {"text": c.text, "image": c.image, "voice": c.voice}
        silent = [
            refs[family].app
            for family, answer in zip(FAMILIES, answers, strict=True)
            if isinstance(answer, BaseException)
        ]
        if not silent:
            return {}
        try:
            reasons = await waiting_families(silent)
        except Exception:  # the controller is busy or gone: say nothing more
            logger.warning("reading serve status failed", exc_info=True)
            return {}
        return {
            family: reasons[refs[family].app]
            for family in FAMILIES
            if refs[family].app in reasons
        }

    async def _probe(self, method: str, request: Any) -> list[Any]:
        """`method` on every family, each bounded by probe_timeout_s."""
        handles = (self.studio.text, self.studio.image, self.studio.voice)
        timeout = self.config.probe_timeout_s

        async def one(handle: Handle) -> Any:
            return await asyncio.wait_for(
                call_child(handle, method, request, InFlight()), timeout
            )

        return await asyncio.gather(*(one(h) for h in handles), return_exceptions=True)
