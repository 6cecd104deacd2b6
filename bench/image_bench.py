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
Target (the issue): served at concurrency 8 >= 0.8x the limit.

Usage: ``python -m bench.image_bench [--images 48] [--concurrency 1 4 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.text_bench import Server, _spawn, _venv_env, free_port, log, stop, wait_ready
from deployments import launch

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "demo" / "image"
LIMIT_BATCH = 8
TARGET_CONCURRENCY = 8
TARGET_RATIO = 0.8


def _image_args() -> tuple[dict[str, Any], dict[str, Any]]:
    """serve_config.yaml and its image application."""
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    (image,) = [a for a in raw["applications"] if a["name"] == "image"]
    return raw, image


def raw_images_per_s(images: int, batch: int) -> float:
    """The demo pipeline in this process, `batch` prompts per call."""
    import torch
    from diffusers import DiffusionPipeline

    _, app = _image_args()
    engine = app["args"]["engine"]
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


def start_image_server(workdir: Path) -> Server:
    """`serve run` with only the image application, on free ports."""
    config, image = _image_args()
    config["applications"] = [image]
    port = free_port()
    config["grpc_options"]["port"] = port
    config["http_options"]["port"] = free_port()
    path = workdir / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = launch.side_by_side_environment(_venv_env())
    proc, log_path = _spawn("maestro-image", launch.command(path), env, workdir)
    return Server("maestro-image", proc, f"127.0.0.1:{port}", log_path)


def image_ready(target: str) -> bool:
    from grpc_health.v1 import health_pb2

    from maestro import MaestroClient, MaestroRpcError

    with MaestroClient(target, timeout=5) as client:
        try:
            return client.health("image") == health_pb2.HealthCheckResponse.SERVING
        except MaestroRpcError:
            return False


async def served_images_per_s(
    target: str, images: int, concurrency: int
) -> tuple[float, str]:
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
    return rate, " ".join(f"{k}:{v}" for k, v in sorted(delta.items()) if v)


async def _batch_sizes(client: Any) -> dict[int, int]:
    (model,) = await client.list_models(["image"])
    pairs = (p.split(":") for p in model.stats["batch_sizes"].split())
    return {int(size): int(n) for size, n in pairs}


def measure_raw(images: int, naive_images: int | None = None) -> dict[str, float]:
    """The raw pipeline in this process: one image per call, and batched."""
    return {
        "naive_images_s": raw_images_per_s(naive_images or images, 1),
        "batched_images_s": raw_images_per_s(images, LIMIT_BATCH),
        "batch": LIMIT_BATCH,
    }


def measure_served(
    target: str, images: int, concurrencies: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Served images/s at each concurrency against a running image application."""
    served: dict[int, dict[str, Any]] = {}
    for c in concurrencies:
        rate, sizes = asyncio.run(served_images_per_s(target, images, c))
        served[c] = {"images_per_s": rate, "batches": sizes}
        log(f"image: concurrency {c}: {rate:.2f} images/s (batches {sizes})")
    return served


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    log("raw pipeline (before the server)")
    naive = [raw_images_per_s(args.images, 1)]
    limit = [raw_images_per_s(args.images, LIMIT_BATCH)]
    served: dict[int, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="image-bench-") as tmp:
        server = start_image_server(Path(tmp))
        try:
            log(f"served: ready in {wait_ready(server, image_ready):.0f} s")
            for c in args.concurrency:
                served[c] = asyncio.run(
                    served_images_per_s(server.target, args.images, c)
                )
                log(f"concurrency {c}: {served[c][0]:.2f} images/s")
        finally:
            stop(server)
    log("raw pipeline (after the server)")
    naive.append(raw_images_per_s(args.images, 1))
    limit.append(raw_images_per_s(args.images, LIMIT_BATCH))
    best_naive, best_limit = max(naive), max(limit)

    print(f"raw, one image per call (naive): {best_naive:6.2f} images/s")
    print(f"raw, {LIMIT_BATCH} prompts per call (limit): {best_limit:6.2f} images/s")
    print(f"{'concurrency':>11} {'served/s':>9} {'/naive':>7} {'/limit':>7}  batches")
    for c, (rate, sizes) in served.items():
        print(
            f"{c:>11} {rate:>9.2f} {rate / best_naive:>7.2f} "
            f"{rate / best_limit:>7.2f}  {sizes}"
        )
    if TARGET_CONCURRENCY in served:
        ratio = served[TARGET_CONCURRENCY][0] / best_limit
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(
            f"target at concurrency {TARGET_CONCURRENCY}: >= {TARGET_RATIO}x limit: "
            f"{ratio:.2f}x ({verdict})"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "raw_naive": naive,
                    "raw_limit": limit,
                    "served": {
                        c: {"images_per_s": r, "batches": s}
                        for c, (r, s) in served.items()
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
