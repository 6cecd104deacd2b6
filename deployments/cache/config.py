"""The `cache:` block of a family's `args`: its response cache."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["CacheConfig"]


class CacheConfig(BaseModel):
    """Results of deterministic requests, served again without the engine.

    Cached: text with temperature 0 or a seed, images and speech with a
    seed (a seeded Compose: its child calls). Never: unseeded sampling.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Off by default, like Triton's response cache: a cache "
        "changes what a repeated seeded benchmark measures.",
    )
    store: str = Field(
        "memory",
        description="`memory` (in the replica, nothing to install) or a "
        "`redis://host:port/db` URL shared by every replica and node (it may "
        "be the quota store's server).",
    )
    max_bytes: int = Field(
        256 * 2**20,
        ge=1,
        description="Most bytes of results the store keeps for this family; the "
        "least recently used entries are evicted past it.",
    )
    max_entry_bytes: int = Field(
        16 * 2**20,
        ge=1,
        description="A result larger than this is served but not stored.",
    )
    ttl_s: float = Field(
        3600.0,
        gt=0,
        description="Seconds an entry lives after it is stored.",
    )
    scope: Literal["key", "global"] = Field(
        "key",
        description="`key`: each API key has its own entries, so no tenant can "
        "tell from timing what another asked; `global`: all keys share them.",
    )
    hit_cost_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of a request's quota budget (tokens, pixel-steps, "
        "characters) a hit is charged; it still counts as a request.",
    )
    redis_timeout_s: float = Field(
        0.25,
        gt=0,
        description="A Redis call slower than this counts as the store being "
        "down: the request is served without the cache.",
    )

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("store must be `memory` or a redis:// URL")
        return value

    @model_validator(mode="after")
    def _entry_fits(self) -> CacheConfig:
        if self.max_entry_bytes > self.max_bytes:
            raise ValueError("max_entry_bytes must not exceed max_bytes")
        return self

    @property
    def store_kind(self) -> str:
        return "memory" if self.store == "memory" else "redis"
