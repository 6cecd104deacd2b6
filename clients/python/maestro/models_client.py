"""Model management (API key scope `admin`): load, pin and unload models,
add or remove their LoRA adapters at run time, and read or clear each
family's response cache.

A model id belongs to one family; the family is found from ListModels unless
given. Loading waits for the load (bounded by the call's timeout); unloading
waits until the model's requests in flight have finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from maestro.errors import MaestroRpcError
from maestro.routing import FAMILIES
from maestro.v1 import models_pb2

__all__ = ["AsyncModelAdminMethods", "ModelAdminMethods", "default_models"]


def default_models(
    rows: Iterable[models_pb2.ModelInfo],
) -> list[models_pb2.ModelInfo]:
    """The rows (of `list_models`) of each family's default model, in order:
    the model a request with an empty `model` runs on."""
    return [row for row in rows if row.stats.get("default", "true") == "true"]


def _family_of(models: list[models_pb2.ModelInfo], model: str) -> str:
    for info in models:
        if info.id == model:
            return models_pb2.Family.Name(info.family).removeprefix("FAMILY_").lower()
    known = ", ".join(sorted(m.id for m in models)) or "none"
    raise MaestroRpcError(
        grpc.StatusCode.NOT_FOUND, f"model {model!r} not found; available: {known}"
    )


class ModelAdminMethods:
    """Model, adapter and cache administration for the blocking client."""

    _models: Any

    def load_model(
        self,
        model: str,
        *,
        family: str | None = None,
        pin: bool = False,
        timeout: float | None = None,
    ) -> models_pb2.ModelInfo:
        """Load a registered model now (`pin`: never evict it)."""
        request = models_pb2.LoadModelRequest(model=model, pin=pin)
        return self._admin("LoadModel", request, model, family, timeout).model

    def unload_model(
        self, model: str, *, family: str | None = None, timeout: float | None = None
    ) -> models_pb2.ModelInfo:
        """Unload a model once its requests drained (and unpin it)."""
        request = models_pb2.UnloadModelRequest(model=model)
        return self._admin("UnloadModel", request, model, family, timeout).model

    def load_adapter(
        self,
        model: str,
        name: str,
        path: str,
        *,
        control_type: str = "",
        family: str | None = None,
        timeout: float | None = None,
    ) -> models_pb2.LoadAdapterResponse:
        """Add a LoRA adapter (a folder under the model's adapter_dirs), or
        with `control_type` (image models) a ControlNet for that type."""
        request = models_pb2.LoadAdapterRequest(
            model=model, name=name, path=path, control_type=control_type
        )
        return self._admin("LoadAdapter", request, model, family, timeout)

    def unload_adapter(
        self,
        model: str,
        name: str,
        *,
        family: str | None = None,
        timeout: float | None = None,
    ) -> models_pb2.ModelInfo:
        """Remove an adapter once the requests using it finished."""
        request = models_pb2.UnloadAdapterRequest(model=model, name=name)
        return self._admin("UnloadAdapter", request, model, family, timeout).model

    def cache_stats(
        self, family: str, *, timeout: float | None = None
    ) -> models_pb2.CacheStats:
        """The family's response cache: entries, bytes, hits, misses..."""
        request = models_pb2.CacheStatsRequest()
        return self._admin("CacheStats", request, "", family, timeout).stats

    def clear_cache(self, family: str, *, timeout: float | None = None) -> int:
        """Drop every entry of the family's cache; returns how many."""
        request = models_pb2.ClearCacheRequest()
        return int(self._admin("ClearCache", request, "", family, timeout).removed)

    def _admin(
        self, rpc: str, request: Any, model: str, family: str | None, timeout: Any
    ) -> Any:
        family = family or _family_of(self.list_models(FAMILIES), model)  # type: ignore[attr-defined]
        t = self._deadline(timeout)  # type: ignore[attr-defined]
        try:
            return getattr(self._models, rpc)(
                request,
                timeout=t,
                metadata=self._metadata(family, t, model),  # type: ignore[attr-defined]
            )
        except grpc.RpcError as error:
            raise MaestroRpcError.from_rpc_error(error) from None


class AsyncModelAdminMethods:
    """Model, adapter and cache administration for the asyncio client."""

    _models: Any

    async def load_model(
        self,
        model: str,
        *,
        family: str | None = None,
        pin: bool = False,
        timeout: float | None = None,
    ) -> models_pb2.ModelInfo:
        """Load a registered model now (`pin`: never evict it)."""
        request = models_pb2.LoadModelRequest(model=model, pin=pin)
        return (await self._admin("LoadModel", request, model, family, timeout)).model

    async def unload_model(
        self, model: str, *, family: str | None = None, timeout: float | None = None
    ) -> models_pb2.ModelInfo:
        """Unload a model once its requests drained (and unpin it)."""
        request = models_pb2.UnloadModelRequest(model=model)
        reply = await self._admin("UnloadModel", request, model, family, timeout)
        return reply.model

    async def load_adapter(
        self,
        model: str,
        name: str,
        path: str,
        *,
        control_type: str = "",
        family: str | None = None,
        timeout: float | None = None,
    ) -> models_pb2.LoadAdapterResponse:
        """Add a LoRA adapter (a folder under the model's adapter_dirs), or
        with `control_type` (image models) a ControlNet for that type."""
        request = models_pb2.LoadAdapterRequest(
            model=model, name=name, path=path, control_type=control_type
        )
        return await self._admin("LoadAdapter", request, model, family, timeout)

    async def unload_adapter(
        self,
        model: str,
        name: str,
        *,
        family: str | None = None,
        timeout: float | None = None,
    ) -> models_pb2.ModelInfo:
        """Remove an adapter once the requests using it finished."""
        request = models_pb2.UnloadAdapterRequest(model=model, name=name)
        reply = await self._admin("UnloadAdapter", request, model, family, timeout)
        return reply.model

    async def cache_stats(
        self, family: str, *, timeout: float | None = None
    ) -> models_pb2.CacheStats:
        """The family's response cache: entries, bytes, hits, misses..."""
        request = models_pb2.CacheStatsRequest()
        return (await self._admin("CacheStats", request, "", family, timeout)).stats

    async def clear_cache(self, family: str, *, timeout: float | None = None) -> int:
        """Drop every entry of the family's cache; returns how many."""
        request = models_pb2.ClearCacheRequest()
        reply = await self._admin("ClearCache", request, "", family, timeout)
        return int(reply.removed)

    async def _admin(
        self, rpc: str, request: Any, model: str, family: str | None, timeout: Any
    ) -> Any:
        if family is None:
            family = _family_of(await self.list_models(FAMILIES), model)  # type: ignore[attr-defined]
        t = self._deadline(timeout)  # type: ignore[attr-defined]
        try:
            return await getattr(self._models, rpc)(
                request,
                timeout=t,
                metadata=self._metadata(family, t, model),  # type: ignore[attr-defined]
            )
        except grpc.RpcError as error:
            raise MaestroRpcError.from_rpc_error(error) from None
