"""GPU image benchmark: the engine alone (no Ray) next to a plain diffusers call.

Builds an SDXL-architecture pipeline with random weights (random weights cost
the same compute as trained ones), saves it once, then times in one process:

- raw: `StableDiffusionXLPipeline.__call__` at 1024x1024, 30 steps, fp16;
- engine: `ImageEngine.generate` with the same request (same pipeline path,
  dtype, scheduler, steps, guidance), PNG encoding included.

Both are timed over the same number of runs after a warm-up; medians are
reported with the ratio engine/raw (target <= 1.05) and the device name.
The engine's batching wait is 0 here: this measures one request's latency.
Each side runs in its own fresh process, one after the other.

Usage (GPU): ``python -m bench.image_gpu``; prove it on a CPU with
``python -m bench.image_gpu --device cpu --tiny`` (a small SDXL-architecture
model at 128x128, 4 steps).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.targets import TARGETS

SEED = 1234
PROMPT = "a lighthouse on a cliff at dusk, oil painting"
TARGET = TARGETS["gpu_image_engine"]


def _sdxl_parts(tiny: bool) -> dict[str, Any]:
    """Component configs: SDXL base 1.0's shapes, or a small model of its kind."""
    if not tiny:
        return {
            "unet": {
                "sample_size": 128,
                "block_out_channels": (320, 640, 1280),
                "down_block_types": (
                    "DownBlock2D",
                    "CrossAttnDownBlock2D",
                    "CrossAttnDownBlock2D",
                ),
                "up_block_types": (
                    "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D",
                    "UpBlock2D",
                ),
                "transformer_layers_per_block": (1, 2, 10),
                "attention_head_dim": (5, 10, 20),
                "cross_attention_dim": 2048,
                "addition_time_embed_dim": 256,
                "projection_class_embeddings_input_dim": 2816,
                "layers_per_block": 2,
            },
            "vae_channels": (128, 256, 512, 512),
            "text": {"hidden_size": 768, "intermediate_size": 3072, "layers": 12},
            "text_2": {"hidden_size": 1280, "intermediate_size": 5120, "layers": 32},
            "heads": (12, 20),
            "size": 1024,
            "steps": 30,
        }
    return {
        "unet": {
            "sample_size": 16,
            "block_out_channels": (32, 64),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "transformer_layers_per_block": (1, 2),
            "attention_head_dim": (2, 4),
            "cross_attention_dim": 64,
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 80,  # 6 x 8 + 32
            "layers_per_block": 1,
            "norm_num_groups": 32,
        },
        "vae_channels": (32, 64),
        "text": {"hidden_size": 32, "intermediate_size": 64, "layers": 2},
        "text_2": {"hidden_size": 32, "intermediate_size": 64, "layers": 2},
        "heads": (4, 4),
        "size": 128,
        "steps": 4,
    }


def build_sdxl(out: Path, *, tiny: bool) -> dict[str, Any]:
    """Save a random-weight SDXL-architecture pipeline (fp16) into `out`."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
    )

    from models.image_demo import _tokenizer

    parts = _sdxl_parts(tiny)
    torch.manual_seed(SEED)
    tokenizer = _tokenizer()  # any fast tokenizer with 77 positions works

    def text_config(spec: dict[str, int], heads: int) -> Any:
        return CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec["hidden_size"],
            intermediate_size=spec["intermediate_size"],
            num_hidden_layers=spec["layers"],
            num_attention_heads=heads,
            projection_dim=spec["hidden_size"],
            max_position_embeddings=77,
            hidden_act="gelu",
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        )

    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=4,
        use_linear_projection=True,
        addition_embed_type="text_time",
        **parts["unet"],
    )
    n = len(parts["vae_channels"])
    vae = AutoencoderKL(
        block_out_channels=parts["vae_channels"],
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        latent_channels=4,
        sample_size=parts["size"],
        scaling_factor=0.13025,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text_config(parts["text"], parts["heads"][0])),
        text_encoder_2=CLIPTextModelWithProjection(
            text_config(parts["text_2"], parts["heads"][1])
        ),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        ),
    )
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    return parts


def _time(fn: Any, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float | None:
    """Peak GPU memory torch allocated in this process (None on the CPU)."""
    import torch

    if device != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def bench_raw(path: Path, args: argparse.Namespace, size: int, steps: int) -> Any:
    import torch
    from diffusers import StableDiffusionXLPipeline

    dtype = torch.float16 if args.device == "cuda" else torch.float32
    pipe = StableDiffusionXLPipeline.from_pretrained(path, dtype=dtype).to(args.device)
    pipe.set_progress_bar_config(disable=True)

    def call() -> None:
        pipe(
            PROMPT,
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=torch.Generator().manual_seed(SEED),
        )
        _sync(args.device)

    call()  # warm-up: kernels, allocator
    return _time(call, args.runs), _peak_gib(args.device), 0.0


def bench_engine(path: Path, args: argparse.Namespace, size: int, steps: int) -> Any:
    import gc

    import torch

    from deployments.engines.image.config import ImageEngineConfig
    from deployments.engines.image.engine import ImageEngine
    from deployments.engines.image.types import ImageRequest

    gc.collect()  # the raw pipeline's weights go before the engine loads its own
    if args.device == "cuda":
        torch.cuda.empty_cache()

    config = ImageEngineConfig.model_validate(
        {
            "model": str(path),
            "device": args.device,
            "dtype": "float16" if args.device == "cuda" else "float32",
            "limits": {"max_size": size, "max_steps": steps, "default_steps": steps},
            "batching": {"max_batch_size": 1, "max_wait_ms": 0},
        }
    )
    request = ImageRequest(
        prompt=PROMPT,
        width=size,
        height=size,
        steps=steps,
        guidance_scale=5.0,
        seed=SEED,
    )

    async def run() -> list[float]:
        engine = ImageEngine(config)
        await engine.start()
        await engine.generate(request)  # warm-up
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = await engine.generate(request)
            seconds.append(time.perf_counter() - start)
        await engine.shutdown()
        return seconds, _encode_seconds(result.images[0].data)

    seconds, encode_s = asyncio.run(run())
    return seconds, _peak_gib(args.device), encode_s


def _encode_seconds(png: bytes) -> float:
    """Median time to PNG-encode the engine's own output (part of its time)."""
    import io

    import numpy as np
    from PIL import Image

    from deployments.engines.image.encoding import encode_image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return statistics.median(_time(lambda: encode_image(pixels, "png", 90), 5))


def _in_fresh_process(fn: Any, *fn_args: Any) -> Any:
    """Run one side in its own process: a clean CUDA context and allocator.

    On CPUs it matters more: once torch has run parallel work on two OS
    threads (the raw call on the main thread, the engine on its worker), the
    two OpenMP thread teams contend for the cores and both sides slow down
    (~40% on 2 cores), which would measure the benchmark, not the engine.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *fn_args).result()


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    import platform

    return f"cpu ({platform.processor() or platform.machine()})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small model (CPU)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model-dir", type=Path, help="reuse/keep the checkpoint")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sdxl-random-") as tmp:
        path = args.model_dir or Path(tmp) / "sdxl"
        start = time.perf_counter()
        if (path / "model_index.json").exists():
            parts = _sdxl_parts(args.tiny)
        else:
            parts = build_sdxl(path, tiny=args.tiny)
            print(f"built {path} in {time.perf_counter() - start:.0f} s")
        size, steps = parts["size"], parts["steps"]
        raw, raw_peak, _ = _in_fresh_process(bench_raw, path, args, size, steps)
        engine, engine_peak, encode_s = _in_fresh_process(
            bench_engine, path, args, size, steps
        )
    raw_s, engine_s = statistics.median(raw), statistics.median(engine)
    print(f"device: {device_name(args.device)}")
    print(f"SDXL architecture, random weights, {size}x{size}, {steps} steps, 1 image")
    print(f"raw diffusers: median {raw_s:.3f} s  runs {[round(s, 3) for s in raw]}")
    print(
        f"engine:        median {engine_s:.3f} s  runs {[round(s, 3) for s in engine]}"
    )
    print(f"engine / raw:  {engine_s / raw_s:.3f}  (target {TARGET.want})")
    print(
        f"of which PNG encoding (engine only, raw returns PIL images): "
        f"{encode_s:.3f} s; engine without it / raw: "
        f"{(engine_s - encode_s) / raw_s:.3f}"
    )
    if raw_peak is not None and engine_peak is not None:
        print(
            f"peak GPU memory allocated: raw {raw_peak:.2f} GiB, "
            f"engine {engine_peak:.2f} GiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
