"""The `auth:` block of serve_config.yaml, and what replicas receive from it.

Read at start like `observability:` (Ray ignores the key): the launcher
resolves it — reads the keys file, registers the local key — into
`AuthSettings`, which every replica gets through `MAESTRO_AUTH` (JSON). Keys
are only ever stored as SHA-256 hashes; a plain key never appears in a config,
the environment of a replica, or a log (the key's *name* is logged).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from maestro import envs

__all__ = [
    "AuthConfig",
    "AuthSettings",
    "KeyEntry",
    "LocalKey",
    "Quotas",
    "load_auth",
]

FAMILIES = ("text", "image", "voice", "studio")
ADMIN = "admin"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Quotas(BaseModel):
    """Per-key limits; each is optional (unset: unlimited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(
        None, ge=1, description="Calls per minute, all families together."
    )
    concurrent_requests: int | None = Field(
        None, ge=1, description="Calls in flight at once, all families together."
    )
    text_tokens_per_minute: int | None = Field(
        None, ge=1, description="Prompt + completion tokens per minute."
    )
    image_pixel_steps_per_minute: int | None = Field(
        None,
        ge=1,
        description="width x height x steps x num_images per minute (a 512x512, "
        "25-step image is 6.6 M).",
    )
    voice_chars_per_minute: int | None = Field(
        None, ge=1, description="Characters of text synthesized per minute."
    )


def _check_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    for scope in scopes:
        family, _, rpc = scope.partition(".")
        if scope in ("*", ADMIN) or (family in FAMILIES and (not rpc or rpc.isalnum())):
            continue
        raise ValueError(
            f"scope {scope!r}: allowed are '*' (every family), 'admin', a family "
            f"({', '.join(FAMILIES)}) or family.Rpc, e.g. text.StreamText"
        )
    return scopes


class KeyEntry(BaseModel):
    """One API key: its name, its hash, what it may call, how much."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Shown in logs and metrics.")
    sha256: str = Field(description="Hex SHA-256 of the key (never the key).")
    scopes: tuple[str, ...] = Field(
        ("*",),
        description="'*' (every family), a family (text, image, voice, studio), "
        "family.Rpc (text.StreamText), 'admin' (model management; '*' excludes it).",
    )
    quotas: Quotas = Field(default_factory=Quotas, description="Per-key limits.")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    _scopes = field_validator("scopes")(classmethod(lambda cls, v: _check_scopes(v)))


class LocalKey(BaseModel):
    """The key of whoever runs `make serve`: MAESTRO_API_KEY, else the key file
    (created on first start, mode 0600)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Register the local key at all.")
    name: str = Field("local", min_length=1, description="Its name in logs.")
    scopes: tuple[str, ...] = Field(
        ("*", ADMIN), description="What it may call (same syntax as keys)."
    )
    quotas: Quotas = Field(default_factory=Quotas, description="Its limits.")

    _scopes = field_validator("scopes")(classmethod(lambda cls, v: _check_scopes(v)))


class AuthConfig(BaseModel):
    """The `auth:` block as written in serve_config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Check API keys. false: anyone who reaches the port may call "
        "everything (only on a closed network).",
    )
    keys_file: str | None = Field(
        None,
        description="YAML list of keys ({name, sha256, scopes, quotas}); `maestro "
        "keys create` appends to it. Relative: the config's folder; ~ expands.",
    )
    keys: tuple[KeyEntry, ...] = Field((), description="Keys listed inline.")
    local_key: LocalKey = Field(
        default_factory=LocalKey, description="The operator's own key."
    )
    quota_store: str = Field(
        "memory",
        description="Where quota counters live: memory (one replica per family; "
        "each replica counts alone) or redis://host:port/db (shared by every "
        "replica and node).",
    )

    @field_validator("quota_store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("quota_store: memory or a redis:// URL")
        return value


class AuthSettings(BaseModel):
    """What replicas get: every key resolved to its hash, and the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(description="Check API keys.")
    keys: tuple[KeyEntry, ...] = Field(description="Every registered key.")
    quota_store: str = Field(description="memory or a redis:// URL.")

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        """The settings the launcher passed; auth off when started without it."""
        raw = envs.MAESTRO_AUTH.get(environ)
        if not raw:
            return cls(enabled=False, keys=(), quota_store="memory")
        return cls.model_validate(json.loads(raw))


def load_auth(serve_config: Mapping[str, Any] | str | Path) -> AuthConfig:
    """The validated `auth:` block (auth on, local key only, if absent)."""
    raw = serve_config
    if not isinstance(raw, Mapping):
        raw = yaml.safe_load(Path(raw).read_text()) or {}
    return AuthConfig.model_validate(raw.get("auth") or {})


def read_keys_file(path: Path) -> tuple[KeyEntry, ...]:
    if not path.exists():
        return ()
    entries = yaml.safe_load(path.read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: a YAML list of keys")
    return tuple(KeyEntry.model_validate(entry) for entry in entries)
