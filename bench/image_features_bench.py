"""Image features benchmark (CPU, demo sizes): each new pipeline served vs raw.

For ControlNet, IP-Adapter, AnimateDiff text-to-video and Stable Video
Diffusion image-to-video, in one run on the same demo checkpoints, 64x64,
fp32, the same settings and seeds on both sides:

- raw: the diffusers pipeline called in this process (what a user of
  diffusers writes: from_pretrained / from_pipe, one call), plus encoding its
  output the way the server does (PNG for images, MP4 for clips), so both
  sides produce the same bytes;
- served: `GenerateImage` / `GenerateVideo` through the ingress of a stack
  holding only the image application (serve_config.yaml's), timed by the
  client, one call at a time.

Raw and served alternate, repeat after repeat (the server idles while raw
runs), and each figure is the median of the repeats. For the clips the
encoding is reported apart from denoising: MP4 (H.264), WebP and GIF of the
same frames, and frame interpolation x2 (flow and blend), each timed on the
raw pipeline's frames.

Usage: ``python -m bench.image_features_bench [--repeats 5] [--calls 2]
[--out bench/reports]``
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.procs import STOP_S
from bench.lib.serve_config import MODELS, ROOT, app_config, base_config, only_apps
from bench.lib.stack import stack

SIZE = 64
IMAGE_STEPS = 4
T2V = {"num_frames": 16, "steps": 2}
I2V = {"num_frames": 8, "steps": 4}  # the demo SVD UNet's clip length
FPS = 8
FEATURES = ("controlnet", "ip_adapter", "animatediff", "svd")


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _inputs() -> dict[str, bytes]:
    """A canny-like edge map, an IP-Adapter reference and an SVD first frame."""
    edges = np.zeros((SIZE, SIZE, 3), np.uint8)
    edges[16:48, 16] = edges[16:48, 47] = edges[16, 16:48] = edges[47, 16:48] = 255
    reference = np.zeros((SIZE, SIZE, 3), np.uint8)
    reference[..., 0] = np.linspace(0, 255, SIZE, dtype=np.uint8)
    first = np.full((SIZE, SIZE, 3), 40, np.uint8)
    first[20:44, 20:44] = (200, 120, 40)
    return {"edges": _png(edges), "reference": _png(reference), "first": _png(first)}


class Raw:
    """The four pipelines as diffusers' documentation builds them."""

    def __init__(self, inputs: dict[str, bytes]) -> None:
        import torch
        from diffusers import (
            AnimateDiffPipeline,
            AutoPipelineForText2Image,
            ControlNetModel,
            DiffusionPipeline,
            MotionAdapter,
            StableVideoDiffusionPipeline,
        )
        from PIL import Image

        engine = app_config(base_config(), "image")["args"]["engine"]
        if engine.get("torch_threads"):
            torch.set_num_threads(engine["torch_threads"])
        self.torch = torch
        sd = DiffusionPipeline.from_pretrained(MODELS / "image", dtype=torch.float32)
        controlnet = ControlNetModel.from_pretrained(MODELS / "image-controlnet")
        self.controlnet = AutoPipelineForText2Image.from_pipe(sd, controlnet=controlnet)
        adapter = MotionAdapter.from_pretrained(MODELS / "video-motion")
        self.animatediff = AnimateDiffPipeline.from_pipe(sd, motion_adapter=adapter)
        # Its own copy: load_ip_adapter changes the UNet's attention.
        self.ip = DiffusionPipeline.from_pretrained(
            MODELS / "image", dtype=torch.float32
        )
        self.ip.load_ip_adapter(
            str(MODELS / "image-ip-adapter"),
            subfolder="",
            weight_name="ip-adapter.safetensors",
        )
        self.ip.set_ip_adapter_scale(0.6)
        self.svd = StableVideoDiffusionPipeline.from_pretrained(MODELS / "video-svd")
        for pipe in (self.controlnet, self.animatediff, self.ip, self.svd):
            pipe.set_progress_bar_config(disable=True)
        self.images = {
            name: Image.open(io.BytesIO(data)).convert("RGB")
            for name, data in inputs.items()
        }
        self.frames: dict[str, np.ndarray] = {}

    def _seed(self) -> Any:
        return self.torch.Generator().manual_seed(7)

    def run(self, feature: str) -> None:
        from deployments.engines.image.video.encoding import encode_video

        image = {"width": SIZE, "height": SIZE, "num_inference_steps": IMAGE_STEPS}
        if feature == "controlnet":
            out = self.controlnet(
                "a box",
                image=self.images["edges"],
                generator=self._seed(),
                output_type="np",
                **image,
            )
            _png((out.images[0] * 255).round().astype(np.uint8))
        elif feature == "ip_adapter":
            out = self.ip(
                "a box",
                ip_adapter_image=self.images["reference"],
                generator=self._seed(),
                output_type="np",
                **image,
            )
            _png((out.images[0] * 255).round().astype(np.uint8))
        else:
            if feature == "animatediff":
                out = self.animatediff(
                    "a cat",
                    num_frames=T2V["num_frames"],
                    num_inference_steps=T2V["steps"],
                    height=SIZE,
                    width=SIZE,
                    generator=self._seed(),
                    output_type="np",
                    decode_chunk_size=8,
                )
            else:
                out = self.svd(
                    self.images["first"],
                    num_frames=I2V["num_frames"],
                    num_inference_steps=I2V["steps"],
                    height=SIZE,
                    width=SIZE,
                    fps=FPS,
                    generator=self._seed(),
                    output_type="np",
                    decode_chunk_size=8,
                )
            frames = (np.asarray(out.frames[0]) * 255).round().astype(np.uint8)
            self.frames[feature] = frames
            encode_video(frames, "mp4", FPS, 60)


def served_call(client: Any, feature: str, inputs: dict[str, bytes]) -> None:
    from maestro.v1 import image_pb2

    image = {"width": SIZE, "height": SIZE, "steps": IMAGE_STEPS, "seed": 7}
    if feature == "controlnet":
        control = image_pb2.ControlImage(type="canny", image=inputs["edges"])
        client.generate_image("a box", controls=[control], **image)
    elif feature == "ip_adapter":
        client.generate_image(
            "a box",
            model="maestro-demo-sd-ip",
            ip_adapter_image=inputs["reference"],
            **image,
        )
    elif feature == "animatediff":
        client.generate_video("a cat", width=SIZE, height=SIZE, fps=FPS, seed=7, **T2V)
    else:
        client.generate_video(
            init_image=inputs["first"],
            width=SIZE,
            height=SIZE,
            fps=FPS,
            seed=7,
            **I2V,
        )


# Between sides: OpenMP's worker threads spin for a while after a parallel
# region (GOMP's wait policy), so the side that ran last would still be
# taking a core from the next one's first call.
SETTLE_S = 0.5


class InProcess:
    """serve_config.yaml's image engines in this process (no Ray, no gRPC):
    `--side engine` tells the engine's cost apart from the serving side's."""

    def __init__(self) -> None:
        import asyncio

        from deployments.engines.image.engine import ImageEngine
        from deployments.image import resolve_config

        config = resolve_config(app_config(base_config(), "image")["args"])
        ip = next(m.engine for m in config.models if m.engine.ip_adapter)
        self.loop = asyncio.new_event_loop()
        self.engines = {"default": ImageEngine(config.engine), "ip": ImageEngine(ip)}
        for engine in self.engines.values():
            self.loop.run_until_complete(engine.start())

    def call(self, feature: str, inputs: dict[str, bytes]) -> None:
        from deployments.engines.image.controls import ControlChoice
        from deployments.engines.image.types import ImageRequest
        from deployments.engines.image.video.types import VideoRequest

        image = {"width": SIZE, "height": SIZE, "steps": IMAGE_STEPS, "seed": 7}
        engine = self.engines["ip" if feature == "ip_adapter" else "default"]
        if feature == "controlnet":
            control = ControlChoice(type="canny", image=inputs["edges"])
            job = engine.generate(ImageRequest("a box", controls=(control,), **image))
        elif feature == "ip_adapter":
            job = engine.generate(
                ImageRequest("a box", ip_adapter_image=inputs["reference"], **image)
            )
        elif feature == "animatediff":
            job = engine.generate_video(
                VideoRequest(
                    "a cat",
                    width=SIZE,
                    height=SIZE,
                    fps=FPS,
                    seed=7,
                    num_frames=T2V["num_frames"],
                    steps=T2V["steps"],
                )
            )
        else:
            job = engine.generate_video(
                VideoRequest(
                    init_image=inputs["first"],
                    width=SIZE,
                    height=SIZE,
                    fps=FPS,
                    seed=7,
                    num_frames=I2V["num_frames"],
                    steps=I2V["steps"],
                )
            )
        self.loop.run_until_complete(job)

    def close(self) -> None:
        for engine in self.engines.values():
            self.loop.run_until_complete(engine.shutdown())
        self.loop.close()


def _timed(call: Callable[[], None], calls: int) -> float:
    """Seconds per call over `calls` calls, after the other side settled."""
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def encoding_costs(frames: np.ndarray, repeats: int) -> dict[str, float]:
    """Median seconds to encode / interpolate one clip's frames."""
    from deployments.engines.image.video.encoding import encode_video
    from deployments.engines.image.video.interpolation import interpolate

    jobs: dict[str, Callable[[], Any]] = {
        "mp4": lambda: encode_video(frames, "mp4", FPS, 60),
        "webp": lambda: encode_video(frames, "webp", FPS, 60),
        "gif": lambda: encode_video(frames, "gif", FPS, 60),
        "interpolate_flow_x2": lambda: interpolate(frames, 2, "flow"),
        "interpolate_blend_x2": lambda: interpolate(frames, 2, "blend"),
    }
    return {
        name: statistics.median(_timed(job, 1) for _ in range(repeats))
        for name, job in jobs.items()
    }


def _alternate(
    raw: Raw,
    other: Callable[[str], None],
    repeats: int,
    calls: int,
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        f: {"raw": [], "served": []} for f in FEATURES
    }
    for feature in FEATURES:  # warm-up (and the IP model's lazy load)
        raw.run(feature)
        other(feature)
    for r in range(repeats):
        for feature in FEATURES:
            samples[feature]["raw"].append(_timed(lambda f=feature: raw.run(f), calls))
            samples[feature]["served"].append(_timed(lambda f=feature: other(f), calls))
        log(f"repeat {r + 1}/{repeats} done")
    return samples


def measure(repeats: int, calls: int, workdir: Path, side: str) -> dict[str, Any]:
    """Raw against `side`: "served" (a stack) or "engine" (in this process)."""
    from maestro import MaestroClient

    inputs = _inputs()
    log("raw pipelines: loading")
    raw = Raw(inputs)
    if side == "engine":
        engines = InProcess()
        try:
            samples = _alternate(raw, lambda f: engines.call(f, inputs), repeats, calls)
        finally:
            engines.close()
    else:
        config = only_apps(base_config(), {"image"})
        with stack(config, workdir, "maestro-image", stop_grace_s=STOP_S) as server:
            with MaestroClient(server.target, timeout=600) as client:
                client.wait_until_serving(300, ["image"])
                samples = _alternate(
                    raw, lambda f: served_call(client, f, inputs), repeats, calls
                )
    encoding = {
        feature: encoding_costs(raw.frames[feature], repeats)
        for feature in ("animatediff", "svd")
    }
    return {"side": side, "samples": samples, "encoding": encoding}


def report(result: dict[str, Any], info: dict[str, Any]) -> str:
    side = result["side"]
    lines = [
        f"# Image features: {side} vs raw diffusers (CPU, demo sizes)",
        "",
        f"Machine: {info['machine']['cpu_model']}, {info['machine']['cpu_count']} "
        f"cores; {info['repeats']} alternating "
        f"repeats of {info['calls']} calls per side; medians. 64x64, fp32; images "
        f"{IMAGE_STEPS} steps, AnimateDiff {T2V['num_frames']} frames x "
        f"{T2V['steps']} steps, SVD {I2V['num_frames']} frames x {I2V['steps']} "
        "steps. Raw includes encoding (PNG / MP4) like the server.",
        "",
        f"| pipeline | raw s/call | {side} s/call | {side} / raw "
        f"| each repeat ({side} / raw) |",
        "|---|---:|---:|---:|---|",
    ]
    for feature, sides in result["samples"].items():
        raw, served = (statistics.median(sides[k]) for k in ("raw", "served"))
        each = " ".join(
            f"{s / r:.2f}" for s, r in zip(sides["served"], sides["raw"], strict=True)
        )
        lines.append(
            f"| {feature} | {raw:.3f} | {served:.3f} | {served / raw:.2f}x | {each} |"
        )
    lines += [
        "",
        "Encoding one clip's frames (median seconds), apart from denoising:",
        "",
        "| clip | frames | mp4 (H.264) | webp | gif | interpolate x2 flow | x2 blend |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for feature, costs in result["encoding"].items():
        frames = T2V["num_frames"] if feature == "animatediff" else I2V["num_frames"]
        lines.append(
            f"| {feature} | {frames} | {costs['mp4']:.4f} | {costs['webp']:.4f} | "
            f"{costs['gif']:.4f} | {costs['interpolate_flow_x2']:.4f} | "
            f"{costs['interpolate_blend_x2']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2, help="calls per sample")
    parser.add_argument(
        "--side",
        choices=("served", "engine"),
        default="served",
        help="served: through a stack; engine: ImageEngine in this process",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "reports")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="maestro-image-features-"))
    result = measure(args.repeats, args.calls, workdir, args.side)
    info = {"machine": machine(), "repeats": args.repeats, "calls": args.calls}
    text = report(result, info)
    print(text)
    stamp = utc_stamp()
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"image-features-{args.side}-{stamp}"
    (args.out / f"{name}.md").write_text(text)
    (args.out / f"{name}.json").write_text(
        json.dumps({"info": info, **result}, indent=2)
    )
    log(f"wrote {args.out / f'{name}.md'}; logs in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
