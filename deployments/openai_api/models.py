"""`GET /v1/models`: every family's models, as OpenAI's model list.

Served by the application on `/v1` (text). Its own models come from its
`ListModels` RPC (which checks the key); the other families' from their
`ListModels` through Ray handles, on the caller's behalf, and only for the
families the key may call. A family that is not deployed (a text-only stack)
or does not answer in time is left out, not an error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.auth.guard import gate
from deployments.errors import PermissionDenied
from deployments.ingress import current_caller
from deployments.openai_api.calls import HttpContext
from maestro.v1 import models_pb2

__all__ = ["list_models"]

logger = logging.getLogger("maestro.openai")
OTHER_FAMILY_TIMEOUT_S = 5.0
_FAMILIES = {
    models_pb2.FAMILY_TEXT: "text",
    models_pb2.FAMILY_IMAGE: "image",
    models_pb2.FAMILY_VOICE: "voice",
}


def _entry(info: models_pb2.ModelInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "model",
        "created": 0,
        "owned_by": "maestro",
        "family": _FAMILIES.get(info.family, "unknown"),
        "ready": info.ready,
        "status": info.status_message,
    }


async def _other_apps() -> list[str]:
    """The other running applications' names (this one's own left out)."""
    from ray import serve

    own = serve.get_replica_context().app_name
    status = await asyncio.to_thread(serve.status)
    return [name for name in status.applications if name != own]


async def _models_of(app: str, caller: str) -> list[models_pb2.ModelInfo]:
    from ray import serve

    handle = serve.get_app_handle(app)
    reply = await asyncio.wait_for(
        handle.ListModels.remote(models_pb2.ListModelsRequest(), maestro_caller=caller),
        OTHER_FAMILY_TIMEOUT_S,
    )
    return list(reply.models)


def _may_list(family: str, caller: str) -> bool:
    guard = gate()
    try:
        guard.authorize(guard.caller(caller), family, "ListModels")
    except PermissionDenied:
        return False
    return True


async def list_models(ingress: Any, request: Request) -> Response:
    """GET /v1/models."""
    context = HttpContext(request.headers.items())
    own = await ingress.ListModels(models_pb2.ListModelsRequest(), context)
    if context.failed:
        return context.error_response()
    caller = current_caller()  # the key the RPC above admitted
    models = list(own.models)
    try:
        apps = await _other_apps()
    except Exception as exc:  # not in a replica, or the controller is away
        logger.warning("cannot list the other applications: %s", exc)
        apps = []
    found = await asyncio.gather(
        *(_models_of(app, caller) for app in apps), return_exceptions=True
    )
    for app, infos in zip(apps, found, strict=True):
        if isinstance(infos, BaseException):
            logger.info("models of application %s left out: %s", app, infos)
            continue
        models += [
            m
            for m in infos
            if m.family in _FAMILIES and _may_list(_FAMILIES[m.family], caller)
        ]  # the studio's own entry is no model an OpenAI client can call
    seen: set[tuple[int, str]] = set()
    data = []
    for info in models:
        if (info.family, info.id) not in seen:
            seen.add((info.family, info.id))
            data.append(_entry(info))
    return JSONResponse({"object": "list", "data": data}, headers=context.headers())
