"""`maestro cache stats|clear`: each family's response cache and the studio's
(Compose) one (scope `admin`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from maestro.client import MaestroClient
from maestro.errors import MaestroRpcError
from maestro.v1 import models_pb2

__all__ = ["add_cache_parser"]

CACHED_FAMILIES = ("text", "image", "voice", "studio")  # studio: Compose


def _stats_dict(stats: models_pb2.CacheStats) -> dict[str, Any]:
    looked = stats.hits + stats.misses
    return {
        "family": models_pb2.Family.Name(stats.family).removeprefix("FAMILY_").lower(),
        "enabled": stats.enabled,
        "store": stats.store,
        "scope": stats.scope,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "max_bytes": stats.max_bytes,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hits / looked, 4) if looked else None,
        "evictions": stats.evictions,
        "errors": stats.errors,
    }


def _stats(client: MaestroClient, args: argparse.Namespace) -> int:
    rows = [
        _stats_dict(client.cache_stats(f)) for f in args.families or CACHED_FAMILIES
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'family':7} {'store':7} {'scope':7} {'entries':>8} {'MB':>8} "
        f"{'hits':>7} {'misses':>7} {'hit rate':>8} {'evicted':>8}"
    )
    for r in rows:
        if not r["enabled"]:
            print(f"{r['family']:7} off (cache.enabled: false in its args)")
            continue
        rate = "-" if r["hit_rate"] is None else f"{r['hit_rate']:.1%}"
        print(
            f"{r['family']:7} {r['store']:7} {r['scope']:7} {r['entries']:>8} "
            f"{r['bytes'] / 1e6:>8.2f} {r['hits']:>7} {r['misses']:>7} "
            f"{rate:>8} {r['evictions']:>8}"
        )
    return 0


def _clear(client: MaestroClient, args: argparse.Namespace) -> int:
    failed = 0
    for family in args.families or CACHED_FAMILIES:
        try:
            print(f"{family}: {client.clear_cache(family)} entries removed")
        except MaestroRpcError as error:
            print(f"{family}: {error}")
            failed = 1
    return failed


def add_cache_parser(sub: Any) -> None:
    cache = sub.add_parser(
        "cache", help="response cache figures or clearing, per family (admin)"
    )
    actions = cache.add_subparsers(dest="cache_command", required=True)
    stats = actions.add_parser("stats", help="entries, bytes, hits, misses")
    stats.add_argument("families", nargs="*", help="default: text image voice studio")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=_stats)
    clear = actions.add_parser("clear", help="drop every entry")
    clear.add_argument("families", nargs="*", help="default: text image voice studio")
    clear.set_defaults(run=_clear)
