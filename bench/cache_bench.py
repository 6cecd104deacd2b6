"""Response cache benchmark: hit rate and hit vs miss latency, per family and store.

    python -m bench.cache_bench [--stores memory redis] [--repeats 3]
                                [--requests 40] [--prompts 40] [--zipf 1.1]

The demo stack (text, image and voice, as serve_config.yaml serves them) with
`cache: {enabled: true}` on every family, once per store: the in-process
LRU (`memory`) and a real `redis-server` this script starts (`redis`). Each
repeat clears the caches (`ClearCache`), then sends every family the same
kind of workload, one call at a time through the gRPC ingress:
`--requests` deterministic requests (text: greedy; image and voice: seeded)
whose prompts are drawn from a Zipf distribution (exponent `--zipf`) over
`--prompts` distinct prompts, with a different draw per repeat.

Reported per store and family, as medians over the repeats:
- the hit rate (`x-cache: hit` trailers over calls), beside the rate the
  draw allows (1 - distinct / drawn: the cache never forgets within a run,
  so the two must agree) and the target (`bench.targets`, cache_hit_rate);
- the p50 latency of hits and of misses, and miss / hit (target for image,
  cache_image_hit_speedup: >= 50x).

Images are 128x128 at the configured default steps, so a miss costs seconds
on the 2-core demo machine, as a real image costs on a GPU.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from bench.lib.log import log
from bench.lib.serve_config import base_config, only_apps
from bench.lib.stack import stack
from bench.targets import TARGETS
from maestro.auth import auth_metadata, default_api_key
from maestro.v1 import (
    image_pb2,
    image_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    text_pb2,
    text_pb2_grpc,
    voice_pb2,
    voice_pb2_grpc,
)

FAMILIES = ("text", "image", "voice")
HIT_RATE, IMAGE_SPEEDUP = TARGETS["cache_hit_rate"], TARGETS["cache_image_hit_speedup"]
SUBJECTS = (
    "a lighthouse",
    "a red barn",
    "an old map",
    "a quiet harbour",
    "a fox",
    "a winter road",
    "a glass city",
    "a paper boat",
    "a desert well",
    "a violin",
)
PLACES = ("at dawn", "in the rain", "under stars", "in autumn")


def prompts(count: int) -> list[str]:
    """`count` distinct prompts (subject x place, then numbered)."""
    pairs = [f"{s} {p}" for p in PLACES for s in SUBJECTS]
    return [
        pairs[i % len(pairs)] + (f" ({i})" if i >= len(pairs) else "")
        for i in range(count)
    ]


def zipf_draw(count: int, population: int, exponent: float, seed: int) -> list[int]:
    """`count` indices in [0, population), P(k) proportional to 1/(k+1)^exponent."""
    weights = [1.0 / (k + 1) ** exponent for k in range(population)]
    return random.Random(seed).choices(range(population), weights, k=count)


# One deterministic request per family: (stub, rpc, request for a prompt).
def _text(prompt: str) -> Any:
    return text_pb2.GenerateTextRequest(prompt=prompt, max_tokens=32, temperature=0)


def _image(prompt: str) -> Any:
    return image_pb2.GenerateImageRequest(prompt=prompt, width=128, height=128, seed=1)


def _voice(prompt: str) -> Any:
    return voice_pb2.SynthesizeRequest(text=f"Here is {prompt}.", seed=1)


CALLS: dict[str, tuple[Callable[[Any], Any], str, Callable[[str], Any]]] = {
    "text": (text_pb2_grpc.TextServiceStub, "GenerateText", _text),
    "image": (image_pb2_grpc.ImageServiceStub, "GenerateImage", _image),
    "voice": (voice_pb2_grpc.VoiceServiceStub, "Synthesize", _voice),
}


@dataclass
class Run:
    """One family's workload in one repeat."""

    family: str
    store: str
    calls: int
    hits: int
    expected_hits: int  # drawn - distinct
    hit_s: list[float]
    miss_s: list[float]

    @property
    def hit_rate(self) -> float:
        return self.hits / self.calls


def _metadata(family: str) -> list[tuple[str, str]]:
    """Routing, and the key `make serve` created (MAESTRO_API_KEY, else
    ~/.maestro/api_key), as every Maestro client sends them."""
    return [("application", family), *auth_metadata(default_api_key())]


def _workload(
    channel: grpc.Channel, family: str, store: str, draw: list[int], texts: list[str]
) -> Run:
    stub_type, rpc, build = CALLS[family]
    method = getattr(stub_type(channel), rpc)
    hit_s, miss_s = [], []
    for index in draw:
        started = time.perf_counter()
        _, call = method.with_call(
            build(texts[index]), metadata=_metadata(family), timeout=300
        )
        took = time.perf_counter() - started
        status = dict(call.trailing_metadata()).get("x-cache")
        if status not in ("hit", "miss"):
            raise RuntimeError(f"{family}: no x-cache trailer (is the cache on?)")
        (hit_s if status == "hit" else miss_s).append(took)
    return Run(
        family, store, len(draw), len(hit_s), len(draw) - len(set(draw)), hit_s, miss_s
    )


def _clear(channel: grpc.Channel, family: str) -> None:
    models_pb2_grpc.ModelServiceStub(channel).ClearCache(
        models_pb2.ClearCacheRequest(), metadata=_metadata(family), timeout=60
    )


@contextmanager
def _store(kind: str, workdir: Path) -> Iterator[str]:
    """The `store` value for `kind`, with its server running."""
    if kind == "memory":
        with nullcontext("memory") as url:
            yield url
        return
    # The tests' helper (Debian's redis-server on a free port, no persistence).
    from tests.helpers.redis_server import redis_server

    (workdir / "redis").mkdir(exist_ok=True)
    with redis_server(workdir / "redis") as url:
        yield url


def measure(args: argparse.Namespace, workdir: Path) -> list[Run]:
    texts = prompts(args.prompts)
    runs: list[Run] = []
    for kind in args.stores:
        with _store(kind, workdir) as url:
            config = only_apps(base_config(), set(args.families))
            for app in config["applications"]:
                app["args"]["cache"] = {"enabled": True, "store": url}
            with stack(
                config, workdir, name=f"maestro-{kind}", families=args.families
            ) as server:
                with grpc.insecure_channel(server.target) as channel:
                    for repeat in range(args.repeats):
                        for family in args.families:
                            _clear(channel, family)
                            draw = zipf_draw(
                                args.requests, args.prompts, args.zipf, seed=repeat
                            )
                            run = _workload(channel, family, kind, draw, texts)
                            log(
                                f"{kind} {family} repeat {repeat + 1}: "
                                f"{run.hits}/{run.calls} hits, p50 hit "
                                f"{_ms(_p50(run.hit_s))} ms, miss "
                                f"{_ms(_p50(run.miss_s))} ms"
                            )
                            runs.append(run)
    return runs


def _p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    for store in dict.fromkeys(r.store for r in runs):
        for family in dict.fromkeys(r.family for r in runs):
            mine = [r for r in runs if (r.store, r.family) == (store, family)]
            hit = _p50([p for r in mine if (p := _p50(r.hit_s)) is not None])
            miss = _p50([p for r in mine if (p := _p50(r.miss_s)) is not None])
            rows.append(
                {
                    "store": store,
                    "family": family,
                    "repeats": len(mine),
                    "hit_rate": statistics.median(r.hit_rate for r in mine),
                    "hit_rates": [round(r.hit_rate, 3) for r in mine],
                    "draw_allows": statistics.median(
                        r.expected_hits / r.calls for r in mine
                    ),
                    "hit_p50_ms": None if hit is None else hit * 1e3,
                    "miss_p50_ms": None if miss is None else miss * 1e3,
                    "speedup": None if not (hit and miss) else miss / hit,
                }
            )
    return rows


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def report(rows: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    lines = [
        "| store | family | hit rate (repeats) | draw allows | hit p50 ms | "
        "miss p50 ms | miss / hit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        r_speedup = "-" if r["speedup"] is None else f"{r['speedup']:,.0f}x"
        lines.append(
            f"| {r['store']} | {r['family']} | {r['hit_rate']:.0%} "
            f"({', '.join(f'{h:.0%}' for h in r['hit_rates'])}) | "
            f"{r['draw_allows']:.0%} | {ms(r['hit_p50_ms'])} | "
            f"{ms(r['miss_p50_ms'])} | {r_speedup} |"
        )
    lines.append("")
    for r in rows:
        lines.append(
            f"- {r['store']} {r['family']}: hit rate {r['hit_rate']:.2f} "
            f"({HIT_RATE.want}: {HIT_RATE.verdict(r['hit_rate'])})"
        )
        if r["family"] == "image":
            lines.append(
                f"- {r['store']} image miss / hit: "
                f"{'-' if r['speedup'] is None else format(r['speedup'], '.0f') + 'x'} "
                f"({IMAGE_SPEEDUP.want}: {IMAGE_SPEEDUP.verdict(r['speedup'])})"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--stores", nargs="+", choices=("memory", "redis"), default=["memory", "redis"]
    )
    parser.add_argument(
        "--families", nargs="+", choices=FAMILIES, default=list(FAMILIES)
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=40, help="calls per family per repeat"
    )
    parser.add_argument("--prompts", type=int, default=40, help="distinct prompts")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        runs = measure(args, Path(tmp))
    rows = summarize(runs)
    print(report(rows))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "runs": [asdict(r) for r in runs]}, indent=2)
        )
    met = all(HIT_RATE.met(r["hit_rate"]) for r in rows) and all(
        IMAGE_SPEEDUP.met(r["speedup"]) for r in rows if r["family"] == "image"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
