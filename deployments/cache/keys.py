"""Cache keys: the canonical request, and what identifies the model behind it.

A key is the SHA-256 of canonical JSON (sorted keys, no whitespace) over the
family, the RPC, the scope (an API key's name, or everyone) and the engine's
`cache_form` of the request: every default filled in, the request id left
out, and the model's identity — its checkpoint's fingerprint, its engine
settings, the engine and its version — and the fingerprints of the adapters
the request uses. A reloaded model whose files changed, or an adapter loaded
again from changed weights, therefore never meets its old entries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from deployments import resolve_project_path

__all__ = ["cache_key", "canonical", "digest", "fingerprint"]


def canonical(value: Any) -> Any:
    """`value` as plain JSON data: dataclasses and mappings as sorted
    objects, tuples as lists, bytes as their SHA-256."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def digest(value: Any) -> str:
    """SHA-256 (hex) of `value`'s canonical JSON."""
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(*, family: str, rpc: str, scope: str, form: dict[str, Any]) -> str:
    """The store key of one request (`form`: the engine's `cache_form`)."""
    return f"{family}:{digest([family, rpc, scope, form])}"


def fingerprint(path: str) -> str:
    """What identifies a checkpoint or adapter's files.

    A local file or folder is identified by its real path and every file's
    relative path, size and modification time: rewriting a file changes it,
    reading does not, and it costs a `stat` per file, not a read.
    A hub id stands for itself: pin a revision, or use a local path, when
    the hub's files may change under the same id.
    """
    root = Path(resolve_project_path(path))
    if not root.exists():
        return f"id:{path}"
    if root.is_file():
        files = [root]
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    stats = []
    for file in files:
        st = os.stat(file)
        name = file.name if file == root else str(file.relative_to(root))
        stats.append([name, st.st_size, st.st_mtime_ns])
    return f"files:{digest([str(root.resolve()), stats])}"
