"""`maestro keys create`: a new API key, its hash appended to a keys file.

The key is printed once and never stored; the server's `auth.keys_file`
holds only its SHA-256 (restart `make serve` to load new keys).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from maestro.auth import hash_key, new_key

__all__ = ["add_keys_parser"]

QUOTA_FLAGS = {
    "rpm": "requests_per_minute",
    "concurrent": "concurrent_requests",
    "text_tokens": "text_tokens_per_minute",
    "image_pixel_steps": "image_pixel_steps_per_minute",
    "voice_chars": "voice_chars_per_minute",
}


def _create(_client: Any, args: argparse.Namespace) -> int:
    path = Path(args.keys_file).expanduser()
    entries = (yaml.safe_load(path.read_text()) or []) if path.exists() else []
    if any(entry.get("name") == args.name for entry in entries):
        raise SystemExit(f"maestro: a key named {args.name!r} is already in {path}")
    key = new_key()
    entry: dict[str, Any] = {
        "name": args.name,
        "sha256": hash_key(key),
        "scopes": args.scope or ["*"],
    }
    quotas = {
        field: getattr(args, flag)
        for flag, field in QUOTA_FLAGS.items()
        if getattr(args, flag) is not None
    }
    if quotas:
        entry["quotas"] = quotas
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump([*entries, entry], sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    print(key)
    print(
        f"maestro: key {args.name!r} added to {path} (only its hash); it is shown "
        "this once. Restart the server to load it.",
        file=sys.stderr,
    )
    return 0


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage API keys (server side)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a key, store its hash")
    create.add_argument("name", help="shown in logs and metrics")
    create.add_argument(
        "--keys-file", required=True, help="the auth.keys_file of the server config"
    )
    create.add_argument(
        "--scope",
        action="append",
        help="'*', admin, a family (text, image, voice, studio) or family.Rpc "
        "(repeatable; default '*')",
    )
    for flag, field in QUOTA_FLAGS.items():
        create.add_argument(
            f"--{flag.replace('_', '-')}", dest=flag, type=int, help=f"quota {field}"
        )
    create.set_defaults(run=_create)
