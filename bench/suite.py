"""The benchmark suite: every family beside its peer or limit, in one run.

``python -m bench.suite [--quick] [--only text,platform,image,voice,studio,scaling]``
(`make bench`, `make bench BENCH_ARGS=--quick`) writes
`bench/results/<UTC timestamp>.json`, `<timestamp>.md` and the charts in
`bench/results/<timestamp>/`. What runs, in order, so that no two measured
things share the CPUs:

1. the raw peers in this process or in one of their own, before any server:
   the image pipeline (one call per image and batched), the voice engine,
   vLLM's `AsyncLLM` (the text limit) and vLLM's OpenAI server;
2. one Maestro stack, the demo `serve_config.yaml` plus the `hop`
   application of `bench.hop`, while a sampler records every process's
   memory: text `StreamText` at each concurrency, platform overhead
   (ListModels behind the ingress vs a bare grpcio server; a DeploymentHandle
   hop on GenerateText), served image, served voice, studio Compose;
3. the autoscaling run, on a stack of its own (`bench.autoscale`).

Every stack is stopped on the way out, whatever happens (Ctrl-C included).
A section that fails is recorded in the report, and the others still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import (
    autoscale,
    hop,
    image_bench,
    platform_bench,
    studio_bench,
    text_bench,
    voice_bench,
)
from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.memory import MemorySampler
from bench.lib.procs import Server
from bench.lib.serve_config import MODELS, ROOT, base_config, only_apps
from bench.lib.signals import unwind_on_signals
from bench.lib.stack import stack
from bench.memory_report import MemoryResult
from bench.text.runs import kv_cache_tokens
from maestro import envs

SECTIONS = ("text", "platform", "image", "voice", "studio", "scaling")
# Which applications each section needs in the shared stack.
NEEDS = {
    "text": {"text"},
    "platform": {"text", "hop"},
    "image": {"image"},
    "voice": {"voice"},
    "studio": {"text", "image", "voice", "studio"},
}
FULL = {
    "text_concurrency": [1, 8, 32, 64],
    "image_images": 48,
    "image_naive_images": 48,
    "image_concurrency": [1, 4, 8],
    "voice_repeats": 5,
    "studio_rounds": 3,
    "list_models_calls": 500,
    "hop_calls": {1: 40, 32: 512},
    "autoscale_load_s": 45.0,
    "autoscale_settle_s": 90.0,
}
QUICK = {
    "text_concurrency": [1, 8, 32],
    "image_images": 16,
    "image_naive_images": 8,
    "image_concurrency": [1, 4, 8],
    "voice_repeats": 2,
    "studio_rounds": 1,
    "list_models_calls": 200,
    "hop_calls": {1: 16, 32: 128},
    "autoscale_load_s": 20.0,
    "autoscale_settle_s": 45.0,
}
# The platform section's own deployment: listed, but not counted as the demo.
HOP_REPLICA = "ray::ServeReplica:hop:"


class Suite:
    """Runs the sections; each one's figures or error lands in `self.doc`."""

    def __init__(self, only: set[str], quick: bool, workdir: Path) -> None:
        self.only = only
        self.quick = quick
        self.sizes = QUICK if quick else FULL
        self.workdir = workdir
        self.doc: dict[str, Any] = {
            "quick": quick,
            "sections": sorted(only, key=SECTIONS.index),
            "machine": machine(),
            # Settings that change what is measured, as serve_config.yaml has them.
            "observability": base_config().get("observability"),
            "results": {},
            "errors": {},
            "durations_s": {},
        }

    def section(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one measurement; record its result or its error, and its time."""
        log(f"=== {name}")
        start = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            log(f"{name} failed: {type(exc).__name__}: {str(exc)[-800:]}")
            self.doc["errors"][name] = (
                f"{type(exc).__name__}: {str(exc)[-2000:]}\n"
                + "".join(traceback.format_tb(exc.__traceback__)[-3:])
            )
            result = None
        else:
            self.doc["results"][name] = _jsonable(result)
        self.doc["durations_s"][name] = round(time.monotonic() - start, 1)
        return result

    def run(self) -> None:
        s, only = self.sizes, self.only
        # 1. Raw peers, before any server runs.
        if "image" in only:
            self.section(
                "image.raw",
                lambda: image_bench.measure_raw(
                    s["image_images"], s["image_naive_images"]
                ),
            )
        if "voice" in only:
            self.section(
                "voice.raw", lambda: voice_bench.bench_engine(s["voice_repeats"])
            )
        if "text" in only:
            self.section("text.peers", self._text_peers)
        # 2. One Maestro stack for everything served.
        apps = set().union(*(NEEDS[n] for n in only if n in NEEDS))
        if apps:
            self._served(apps)
        # 3. Autoscaling, on its own stack.
        if "scaling" in only:
            self.section(
                "scaling.autoscale",
                lambda: autoscale.measure(
                    self.workdir, s["autoscale_load_s"], s["autoscale_settle_s"]
                ),
            )

    def _text_peers(self) -> text_bench.TextResult:
        return text_bench.measure(
            self.sizes["text_concurrency"],
            self.quick,
            self.workdir,
            sides=["engine", "vllm"],
        )

    def _served(self, apps: set[str]) -> None:
        config = only_apps(base_config(), apps)
        if "hop" in apps:
            config["applications"].append(hop.HOP_APP_CONFIG)
        families = [a["name"] for a in config["applications"]]
        s, only = self.sizes, self.only
        started = time.monotonic()
        with stack(config, self.workdir, "maestro", families) as server:
            self.doc["durations_s"]["stack.start"] = round(
                time.monotonic() - started, 1
            )
            with MemorySampler(
                server.proc.pid, interval_s=1.0, exclude=(HOP_REPLICA,)
            ) as memory:
                time.sleep(2)
                memory.phase("idle")
                time.sleep(2)
                target = server.target
                if "text" in only:
                    memory.phase("text")
                    self.section("text.maestro", lambda: self._text_maestro(server))
                if "platform" in only:
                    memory.phase("platform")
                    self.section(
                        "platform.list_models",
                        lambda: platform_bench.measure_ingress(
                            target, s["list_models_calls"]
                        ),
                    )
                    self.section(
                        "platform.handle_hop",
                        lambda: platform_bench.measure_handle_hop(
                            target,
                            [1, 32],
                            s["hop_calls"],
                            platform_bench.HOP_MAX_TOKENS,
                        ),
                    )
                if "image" in only:
                    memory.phase("image")
                    self.section(
                        "image.served",
                        lambda: image_bench.measure_served(
                            target, s["image_images"], s["image_concurrency"]
                        ),
                    )
                if "voice" in only:
                    memory.phase("voice")
                    self.section(
                        "voice.served",
                        lambda: voice_bench.measure_served(target, s["voice_repeats"]),
                    )
                if "studio" in only:
                    memory.phase("studio")
                    self.section(
                        "studio",
                        lambda: studio_bench.measure(
                            target, scenes=4, rounds=s["studio_rounds"]
                        ),
                    )
            result = MemoryResult(
                applications=families,
                phases=memory.report(),
                excluded_from_sums=[HOP_REPLICA],
                kv_cache_tokens=kv_cache_tokens(server.log_text()),
            )
            self.doc["results"]["memory"] = _jsonable(result)

    def _text_maestro(self, server: Server) -> text_bench.TextResult:
        return text_bench.measure(
            self.sizes["text_concurrency"],
            self.quick,
            self.workdir,
            sides=["maestro"],
            maestro=server,
        )


def _jsonable(result: Any) -> Any:
    """A result dataclass (or a dict of them) as its JSON document."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    if isinstance(result, dict):
        return {k: _jsonable(v) for k, v in result.items()}
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs (< 10 min)")
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections among {','.join(SECTIONS)}",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = args.only - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose among {SECTIONS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every started stack is stopped; SIGINT
    # too when a shell started the suite in the background (which ignores it).
    unwind_on_signals()
    from bench import report

    if not (MODELS / "text" / "config.json").exists():
        sys.exit("no demo models: make models (python -m models.build_demo)")
    stamp = utc_stamp()
    workdir = Path(tempfile.mkdtemp(prefix="maestro-suite-"))
    suite = Suite(args.only, args.quick, workdir)
    suite.doc["timestamp"] = stamp
    started = time.monotonic()
    try:
        suite.run()
    except BaseException:
        log(f"interrupted; server logs kept in {workdir}")
        raise
    suite.doc["durations_s"]["total"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{stamp}.json"
    json_path.write_text(json.dumps(suite.doc, indent=2, default=str) + "\n")
    md_path = report.write(suite.doc, args.out, stamp)
    if suite.doc["errors"]:
        log(f"sections failed: {sorted(suite.doc['errors'])}; logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"wrote {md_path} and {json_path} in {suite.doc['durations_s']['total']} s")
    print(md_path)
    return 1 if suite.doc["errors"] else 0


if __name__ == "__main__":
    if not envs.MPLBACKEND.is_set():  # charts need no screen
        envs.set_for_children(envs.MPLBACKEND, str(envs.MPLBACKEND.default))
    sys.exit(main())
