"""Studio: Compose's wall time next to the same stages run one after another.

`Compose` plans (text), then draws and narrates every scene concurrently. To
see what the fan-out buys, each round runs, on the same server:

1. `Compose` with N scenes (wall time, client side, first byte to `done`);
2. the same work sequentially through the families' own RPCs: the plan
   (`GenerateText` with the studio's schema, seed and token budget), then each
   scene's `GenerateImage`, then each scene's `Synthesize`, with the prompts,
   narrations and seeds of that Compose call's plan.

The ratio wall / sequential sum is the figure (target `studio` in
`bench.targets`). `measure` returns a `StudioResult`; `section` renders one
in the suite's report.

    make serve   # or any running Maestro
    .venv/bin/python -m bench.studio_bench [--target HOST:PORT] [--scenes 4]

Results go to stdout and `bench/results/studio-<UTC timestamp>.md`/`.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.log import log, utc_stamp
from bench.lib.markdown import Page, fmt, pyplot
from bench.lib.results import to_dict
from bench.lib.serve_config import ROOT
from bench.targets import TARGETS
from deployments.studio.config import StudioAppConfig
from deployments.studio.plan import (
    derive_seed,
    plan_max_tokens,
    plan_messages,
    plan_schema,
)
from maestro import MaestroClient
from maestro.v1 import studio_pb2

TARGET = TARGETS["studio"]
BRIEF = "a lighthouse keeper befriends a comet and they sail the night sky"


def compose_once(
    client: MaestroClient, args: argparse.Namespace, seed: int
) -> tuple[float, studio_pb2.Plan, dict[str, float]]:
    start = time.perf_counter()
    events = list(
        client.compose(
            BRIEF,
            num_scenes=args.scenes,
            seed=seed,
            width=args.size,
            height=args.size,
            steps=args.steps,
        )
    )
    wall = time.perf_counter() - start
    errors = [e.scene_error for e in events if e.HasField("scene_error")]
    if errors:
        raise RuntimeError(f"scene errors: {errors}")
    timings = {t.stage: t.seconds for t in events[-1].done.timings}
    return wall, events[0].plan, timings


def sequential_once(
    client: MaestroClient, args: argparse.Namespace, seed: int, plan: studio_pb2.Plan
) -> dict[str, float]:
    """The studio's child calls, one after another (same requests)."""
    limits = StudioAppConfig().plan
    stages = {"plan": 0.0, "image": 0.0, "audio": 0.0}
    start = time.perf_counter()
    client.generate_text(
        messages=plan_messages(BRIEF, args.scenes),
        json_schema=json.dumps(
            plan_schema(args.scenes, limits, plan_max_tokens(limits)),
            separators=(",", ":"),
        ),
        max_tokens=plan_max_tokens(limits),
        seed=derive_seed(seed, "plan", 0),
    )
    stages["plan"] = time.perf_counter() - start
    for scene in plan.scenes:
        start = time.perf_counter()
        client.generate_image(
            scene.image_prompt,
            width=args.size,
            height=args.size,
            steps=args.steps,
            num_images=1,
            seed=derive_seed(seed, "image", scene.index),
        )
        stages["image"] += time.perf_counter() - start
    for scene in plan.scenes:
        start = time.perf_counter()
        client.synthesize(scene.narration, seed=derive_seed(seed, "audio", scene.index))
        stages["audio"] += time.perf_counter() - start
    return stages


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="127.0.0.1:9000")
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="image width = height")
    p.add_argument("--steps", type=int, default=4, help="denoising steps")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


@dataclass
class StudioResult:
    """Every round's Compose and sequential times, and their medians."""

    args: dict[str, Any]
    rounds: list[dict[str, Any]]
    median: dict[str, float]

    @property
    def ratio(self) -> float:
        """Median Compose wall / sequential sum: the figure held to the target."""
        return self.median["ratio"]


def measure(
    target: str, scenes: int = 4, rounds: int = 3, size: int = 64, steps: int = 4
) -> StudioResult:
    """Compose vs the sequential sum against a running stack."""
    args = argparse.Namespace(scenes=scenes, rounds=rounds, size=size, steps=steps)
    rows: list[dict[str, Any]] = []
    with MaestroClient(target, timeout=600) as client:
        log("studio: warm-up ...")
        compose_once(client, args, seed=10_000)
        for r in range(rounds):
            seed = 1000 + r
            wall, plan, timings = compose_once(client, args, seed)
            seq = sequential_once(client, args, seed, plan)
            total = sum(seq.values())
            rows.append(
                {
                    "seed": seed,
                    "compose_wall_s": wall,
                    "compose_stages_s": timings,
                    "sequential_stages_s": seq,
                    "sequential_sum_s": total,
                    "ratio": wall / total,
                }
            )
            log(
                f"studio round {r + 1}: compose {wall:.2f} s, sequential "
                f"{total:.2f} s, ratio {wall / total:.2f}"
            )
    median = {
        key: statistics.median(r[key] for r in rows)
        for key in ("compose_wall_s", "sequential_sum_s", "ratio")
    }
    return StudioResult(
        {"scenes": scenes, "rounds": rounds, "size": size, "steps": steps}, rows, median
    )


def table(result: StudioResult) -> str:
    """The script's Markdown table."""
    a, med = result.args, result.median
    verdict = "met" if TARGET.met(result.ratio) else "MISSED"
    return "\n".join(
        [
            f"Studio Compose, {a['scenes']} scenes, {a['size']}x{a['size']}, "
            f"{a['steps']} steps (median of {a['rounds']} rounds)",
            "",
            "| round | compose wall s | plan s | images s | narration s "
            "| sequential sum s | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *_rows(result, "{:.2f}"),
            "",
            f"median: compose {med['compose_wall_s']:.2f} s, sequential "
            f"{med['sequential_sum_s']:.2f} s, ratio {result.ratio:.2f} "
            f"(target {TARGET.comparison} {TARGET.threshold:.2f}: {verdict})",
        ]
    )


def _rows(result: StudioResult, form: str | None = None) -> list[str]:
    cell = form.format if form else fmt
    return [
        f"| {i + 1} | {cell(r['compose_wall_s'])} "
        f"| {cell(r['sequential_stages_s']['plan'])} "
        f"| {cell(r['sequential_stages_s']['image'])} "
        f"| {cell(r['sequential_stages_s']['audio'])} "
        f"| {cell(r['sequential_sum_s'])} | {cell(r['ratio'])} |"
        for i, r in enumerate(result.rounds)
    ]


def section(page: Page, result: StudioResult) -> None:
    """The suite's studio section: rounds, the target, the chart."""
    a = result.args
    page.add(
        "",
        "## Studio: Compose vs the sequential sum of its stages",
        "",
        f"{a['scenes']} scenes, {a['size']}×{a['size']}, "
        f"{a['steps']} steps, {a['rounds']} round(s). Sequential = the "
        "same plan, images and narrations through the families' own RPCs, "
        "one after another.",
        "",
        "| round | Compose wall s | plan s | images s | narration s "
        "| sequential sum s | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *_rows(result),
    )
    page.target(TARGET, result.ratio)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    last = result.rounds[-1]
    bottom = 0.0
    for stage in ("plan", "image", "audio"):
        seconds = last["sequential_stages_s"][stage]
        ax.bar(["sequential"], [seconds], bottom=bottom, label=stage)
        bottom += seconds
    ax.bar(["Compose"], [last["compose_wall_s"]], color="tab:orange")
    ax.set_ylabel("seconds")
    ax.legend()
    page.chart(fig, "studio", "studio compose vs sequential")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = measure(args.target, args.scenes, args.rounds, args.size, args.steps)
    text = table(result)
    print(text)
    stamp = utc_stamp()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"studio-{stamp}.md").write_text(text + "\n")
    document = to_dict(result)
    document["args"]["target"] = args.target
    (args.out / f"studio-{stamp}.json").write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
