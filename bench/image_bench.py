"""Image benchmark (CPU, demo model): served images/s next to the raw pipeline.

Peers, all on the same demo checkpoint, 64x64, the configured default steps,
scheduler and guidance, fp32, the same torch thread count:

- raw, naive: diffusers in this process, one pipeline call per image;
- raw, limit: the same pipeline with 8 prompts in one call (what batching can
  reach at best);
- served: `ImageService.GenerateImage` through `serve run` (only the image
  application, so vLLM does not share the cores), from `--concurrency`
  asyncio clients that each send their next request as soon as the previous
  one returns.

The raw peers run before the server starts and again after it stops; the
better of the two is reported (other work on the machine only slows a run).
Target (`bench.targets`, image_batched): served at concurrency 8 >= 0.8x the
limit. `measure_raw` / `measure_served` return the parts of an `ImageResult`;
`section` renders one in the suite's report.

Usage: ``python -m bench.image_bench [--images 48] [--concurrency 1 4 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lib.log import log
from bench.lib.markdown import Page, fmt, pyplot, ratio
from bench.lib.procs import STOP_S
from bench.lib.results import from_dict, int_keys, to_dict
from bench.lib.serve_config import MODELS, app_config, base_config, only_apps
from bench.lib.stack import stack
from bench.targets import TARGETS
from maestro.models_client import default_models

MODEL_DIR = MODELS / "image"
LIMIT_BATCH = 8
TARGET = TARGETS["image_batched"]


@dataclass
class RawImages:
    """The raw pipeline in this process: one image per call, and batched."""

    naive_images_s: float
    batched_images_s: float
    batch: int = LIMIT_BATCH


@dataclass
class ServedImages:
    """Served images/s at one concurrency, and the batch sizes the engine ran."""

    images_per_s: float
    batches: str


@dataclass
class ImageResult:
    raw: RawImages | None = None
    served: dict[int, ServedImages] = field(default_factory=dict)

    @classmethod
    def from_dicts(
        cls, raw: dict[str, Any] | None, served: dict[Any, Any] | None
    ) -> ImageResult:
        return cls(
            from_dict(RawImages, raw) if raw else None,
            {c: from_dict(ServedImages, x) for c, x in int_keys(served or {}).items()},
        )

    def vs_batched(self) -> float | None:
        """Served images/s at the target's concurrency over the raw batched."""
        at = self.served.get(TARGET.at_concurrency or LIMIT_BATCH)
        if at is None or self.raw is None:
            return None
        return ratio(at.images_per_s, self.raw.batched_images_s)


def raw_images_per_s(images: int, batch: int) -> float:
    """The demo pipeline in this process, `batch` prompts per call."""
    import torch
    from diffusers import DiffusionPipeline

    engine = app_config(base_config(), "image")["args"]["engine"]
    steps = engine["limits"]["default_steps"]
    if engine.get("torch_threads"):
        torch.set_num_threads(engine["torch_threads"])
    pipe = DiffusionPipeline.from_pretrained(MODEL_DIR, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    def call(first: int, count: int) -> None:
        pipe(
            [f"prompt {first + i}" for i in range(count)],
            num_inference_steps=steps,
            width=64,
            height=64,
            generator=[torch.Generator().manual_seed(first + i) for i in range(count)],
            output_type="np",
        )

    call(0, batch)  # warm-up
    start = time.perf_counter()
    for first in range(0, images, batch):
        call(first, min(batch, images - first))
    return images / (time.perf_counter() - start)


async def served_images_per_s(
    target: str, images: int, concurrency: int
) -> ServedImages:
    """Images/s from `concurrency` closed-loop clients; and the batch sizes run."""
    from maestro import AsyncMaestroClient

    async with AsyncMaestroClient(target, timeout=120) as client:
        await client.generate_image("warm-up", seed=0)
        before = await _batch_sizes(client)
        counter = iter(range(images))

        async def worker() -> None:
            for i in counter:
                await client.generate_image(f"prompt {i}", seed=i)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rate = images / (time.perf_counter() - start)
        after = await _batch_sizes(client)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return ServedImages(
        rate, " ".join(f"{k}:{v}" for k, v in sorted(delta.items()) if v)
    )


async def _batch_sizes(client: Any) -> dict[int, int]:
    (model,) = default_models(await client.list_models(["image"]))
    pairs = (p.split(":") for p in model.stats["batch_sizes"].split())
    return {int(size): int(n) for size, n in pairs}


def measure_raw(images: int, naive_images: int | None = None) -> RawImages:
    """The raw pipeline in this process: one image per call, and batched."""
    return RawImages(
        naive_images_s=raw_images_per_s(naive_images or images, 1),
        batched_images_s=raw_images_per_s(images, LIMIT_BATCH),
    )


def measure_served(
    target: str, images: int, concurrencies: Sequence[int]
) -> dict[int, ServedImages]:
    """Served images/s at each concurrency against a running image application."""
    served: dict[int, ServedImages] = {}
    for c in concurrencies:
        served[c] = asyncio.run(served_images_per_s(target, images, c))
        log(
            f"image: concurrency {c}: {served[c].images_per_s:.2f} images/s "
            f"(batches {served[c].batches})"
        )
    return served


def section(page: Page, result: ImageResult) -> None:
    """The suite's image section: the table, the target, the chart."""
    raw, served = result.raw, result.served
    page.add(
        "",
        "## Image: served vs the raw pipeline",
        "",
        "Demo SD pipeline, 64×64, the configured default steps, fp32. Raw = "
        "diffusers in the suite's process before any server ran: one call per "
        f"image (naive) and {raw.batch if raw else LIMIT_BATCH} prompts per call "
        "(the limit). Served = `GenerateImage` through the ingress from "
        "closed-loop clients, against the whole demo stack (vLLM idle beside it).",
    )
    page.error("image.raw", "image.served")
    naive = raw.naive_images_s if raw else None
    batched = raw.batched_images_s if raw else None
    page.add(
        "",
        "| what | images/s | / raw one-per-call | / raw batched | batches run |",
        "|---|---:|---:|---:|---|",
        f"| raw, one per call | {fmt(naive)} | 1.00 | {fmt(ratio(naive, batched))} | |",
        f"| raw, batched | {fmt(batched)} | {fmt(ratio(batched, naive))} | 1.00 | |",
    )
    for c, x in served.items():
        page.add(
            f"| served, concurrency {c} | {fmt(x.images_per_s)} "
            f"| {fmt(ratio(x.images_per_s, naive))} "
            f"| {fmt(ratio(x.images_per_s, batched))} | {x.batches} |"
        )
    if TARGET.at_concurrency in served:
        page.target(TARGET, result.vs_batched())
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if served:
        ax.bar([str(c) for c in served], [x.images_per_s for x in served.values()])
    if naive:
        ax.axhline(naive, color="tab:gray", ls="--", label="raw, one per call")
    if batched:
        ax.axhline(batched, color="tab:red", ls="--", label="raw, batched")
    ax.set_xlabel("served, concurrency")
    ax.set_ylabel("images/s")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    page.chart(fig, "image", "image throughput")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    log("raw pipeline (before the server)")
    naive = [raw_images_per_s(args.images, 1)]
    limit = [raw_images_per_s(args.images, LIMIT_BATCH)]
    config = only_apps(base_config(), {"image"})
    with tempfile.TemporaryDirectory(prefix="image-bench-") as tmp:
        with stack(config, Path(tmp), "maestro-image", stop_grace_s=STOP_S) as server:
            served = measure_served(server.target, args.images, args.concurrency)
    log("raw pipeline (after the server)")
    naive.append(raw_images_per_s(args.images, 1))
    limit.append(raw_images_per_s(args.images, LIMIT_BATCH))
    result = ImageResult(RawImages(max(naive), max(limit)), served)
    best_naive, best_limit = max(naive), max(limit)

    print(f"raw, one image per call (naive): {best_naive:6.2f} images/s")
    print(f"raw, {LIMIT_BATCH} prompts per call (limit): {best_limit:6.2f} images/s")
    print(f"{'concurrency':>11} {'served/s':>9} {'/naive':>7} {'/limit':>7}  batches")
    for c, x in served.items():
        rate = x.images_per_s
        print(
            f"{c:>11} {rate:>9.2f} {rate / best_naive:>7.2f} "
            f"{rate / best_limit:>7.2f}  {x.batches}"
        )
    value = result.vs_batched()
    if value is not None:
        verdict = "met" if TARGET.met(value) else "NOT met"
        print(
            f"target at concurrency {TARGET.at_concurrency}: {TARGET.want} limit: "
            f"{value:.2f}x ({verdict})"
        )
    if args.json:
        document = {
            "raw_naive": naive,
            "raw_limit": limit,
            "served": {c: to_dict(x) for c, x in served.items()},
        }
        args.json.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
