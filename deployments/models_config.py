"""The `models:` part of every family's `args`: more models than the default.

args:
  engine: {model: models/demo/image, model_id: maestro-demo-sd}  # default
  models:                       # more models requests may name in `model`
    - engine: {model: models/demo/image, model_id: sd-second}
      preload: false            # loads on its first request
  max_loaded_models: 1          # per replica; LRU idle models are evicted
  max_loaded_bytes: 8000000000  # and/or a memory budget (ListModels memory_bytes)
  cache: {enabled: true}        # the response cache (deployments.cache.config)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments import resolve_project_path
from deployments.cache.config import CacheConfig
from deployments.registry import ModelSpec

__all__ = ["ModelEntry", "ModelsConfig", "model_specs", "resolve_model_paths"]

C = TypeVar("C", bound=BaseModel)


class ModelEntry(BaseModel, Generic[C]):
    """One more model of the family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: C = Field(description="Engine settings, as in the default `engine:`.")
    preload: bool = Field(
        False, description="Load at start (else on its first request)."
    )


class ModelsConfig(BaseModel, Generic[C]):
    """Fields every family's app config has for its model registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: C = Field(description="The default model (requests with no `model`).")
    models: tuple[ModelEntry[C], ...] = Field(
        (), description="More models requests may pick by `model` (their ids)."
    )
    max_loaded_models: int | None = Field(
        None,
        ge=1,
        description="Most models loaded at once per replica; the least recently "
        "used idle one is unloaded to make room (unset: no limit).",
    )

    max_loaded_bytes: int | None = Field(
        None,
        ge=1,
        description="Most bytes the loaded models may hold per replica "
        "(ListModels `memory_bytes`: weights, and vLLM's KV cache); least "
        "recently used idle models are unloaded to make room. A model's "
        "first load is estimated from its checkpoint files (unset: no limit).",
    )

    cache: CacheConfig = Field(
        default_factory=CacheConfig,
        description="The family's response cache (off unless `enabled`).",
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Any:
        ids = [self.engine.served_id] + [m.engine.served_id for m in self.models]  # type: ignore[attr-defined]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique within a family, got {ids}")
        return self


def _anchor_model(engine: Any) -> Any:
    return engine.model_copy(update={"model": resolve_project_path(engine.model)})


def resolve_model_paths(
    config: Any, anchored: Callable[[Any], Any] = _anchor_model
) -> Any:
    """`config` with every model's paths anchored to the project (see
    `resolve_project_path`); `anchored` does it for one engine config."""

    models = tuple(
        m.model_copy(update={"engine": anchored(m.engine)}) for m in config.models
    )
    return config.model_copy(
        update={"engine": anchored(config.engine), "models": models}
    )


def model_specs(config: Any) -> list[ModelSpec]:
    """The registry's models: the default first (always preloaded)."""
    return [ModelSpec(config.engine, preload=True)] + [
        ModelSpec(m.engine, preload=m.preload) for m in config.models
    ]
