"""API keys: making them, hashing them, finding the local one, resolving the block.

A key is `mae_` + 32 random bytes (URL-safe base64). Only its SHA-256 is
stored. Lookup hashes the presented key and compares it with every stored
hash in constant time (`hmac.compare_digest`), so timing says nothing about
which keys exist or how close a guess was.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from deployments.auth.config import (
    AuthConfig,
    AuthSettings,
    KeyEntry,
    read_keys_file,
)
from maestro import envs
from maestro.auth import hash_key, new_key

__all__ = [
    "hash_key",
    "local_key",
    "lookup",
    "new_key",
    "resolve_settings",
]


def lookup(key: str, entries: tuple[KeyEntry, ...]) -> KeyEntry | None:
    """The entry whose hash matches `key`; every entry is compared."""
    digest = hash_key(key)
    found = None
    for entry in entries:
        if hmac.compare_digest(digest, entry.sha256):
            found = entry
    return found


def local_key(*, create: bool) -> str | None:
    """MAESTRO_API_KEY, else the key file; `create` makes the file (0600)."""
    if key := envs.MAESTRO_API_KEY.get():
        return str(key)
    path = Path(envs.MAESTRO_API_KEY_FILE.get()).expanduser()
    if path.is_file():
        return path.read_text().strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_key()
    # O_EXCL: two stacks starting at once must not overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def resolve_settings(config: AuthConfig, base_dir: Path) -> AuthSettings:
    """Every key of the block, hashed, for the replicas (creates the local key)."""
    entries: list[KeyEntry] = list(config.keys)
    if config.keys_file:
        path = Path(config.keys_file).expanduser()
        entries += read_keys_file(path if path.is_absolute() else base_dir / path)
    if config.enabled and config.local_key.enabled:
        key = local_key(create=True)
        assert key is not None
        lk = config.local_key
        entries.append(
            KeyEntry(
                name=lk.name, sha256=hash_key(key), scopes=lk.scopes, quotas=lk.quotas
            )
        )
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"auth: key names must be unique, got {names}")
    return AuthSettings(
        enabled=config.enabled, keys=tuple(entries), quota_store=config.quota_store
    )
