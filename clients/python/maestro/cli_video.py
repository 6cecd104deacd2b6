"""`maestro video "prompt" -o clip.mp4`: generate a clip with a progress bar.

Text-to-video from the prompt, or image-to-video from `--image` (then no
prompt). The bar is driven by StreamVideo's per-step progress events; the
container follows the output's suffix (.mp4, .webp, .gif). Ctrl-C cancels
the request on the server (the clip stops at its next step).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from maestro.cli_image import parse_size
from maestro.cli_progress import waiting_for_model
from maestro.client import MaestroClient
from maestro.v1 import image_pb2

__all__ = ["add_video_parser"]

_FORMAT_BY_SUFFIX = {".mp4": "mp4", ".webp": "webp", ".gif": "gif"}


def _video(client: MaestroClient, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    out = Path(args.output)
    fmt = _FORMAT_BY_SUFFIX.get(out.suffix.lower())
    if fmt is None:
        print(
            f"maestro: {out}: the output must end in .mp4, .webp or .gif",
            file=sys.stderr,
        )
        return 2
    width, height = args.size or (None, None)
    params: dict[str, Any] = {
        "negative_prompt": args.negative,
        "width": width,
        "height": height,
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "num_frames": args.frames,
        "fps": args.fps,
        "format": fmt,
        "quality": args.quality,
        "model": args.model,
        "init_image": Path(args.image).read_bytes() if args.image else None,
        "motion_bucket_id": args.motion,
        "interpolation_factor": args.interpolate,
        "interpolation": args.interpolation,
    }
    result: image_pb2.GenerateVideoResponse | None = None
    with tqdm(desc="denoising", unit="step", file=sys.stderr, leave=False) as bar:
        for message in client.stream_video(args.prompt or "", **params):
            if waiting_for_model(message):
                continue
            if message.HasField("progress"):
                bar.total = message.progress.total_steps
                bar.update(message.progress.step - bar.n)
            else:
                result = message.result
    if result is None:  # pragma: no cover - the server always ends with one
        print("maestro: the stream ended without a video", file=sys.stderr)
        return 1
    video = result.video
    out.write_bytes(video.data)
    print(
        f"{out} ({video.width}x{video.height}, {video.num_frames} frames at "
        f"{video.fps} fps, {video.mime_type}, seed {video.seed})"
    )
    return 0


def add_video_parser(subparsers: Any) -> None:
    """Register the `video` subcommand on the `maestro` parser."""
    video = subparsers.add_parser(
        "video", help="generate a video clip (progress bar from StreamVideo)"
    )
    video.add_argument("prompt", nargs="?", help="text-to-video prompt")
    video.add_argument("-o", "--output", default="clip.mp4", help=".mp4/.webp/.gif")
    video.add_argument(
        "--image", metavar="IMAGE", help="image-to-video: the first frame (no prompt)"
    )
    video.add_argument("--negative", help="negative prompt (text-to-video)")
    video.add_argument("--size", type=parse_size, help="WxH, e.g. 512x512")
    video.add_argument("--frames", type=int, help="generated frames")
    video.add_argument("--fps", type=int, help="frames per second")
    video.add_argument("--steps", type=int)
    video.add_argument("--guidance", type=float, help="guidance scale")
    video.add_argument("--seed", type=int)
    video.add_argument("--quality", type=int, help="MP4/WebP quality 1..100")
    video.add_argument("--motion", type=int, help="image-to-video motion 0..255")
    video.add_argument(
        "--interpolate",
        type=int,
        metavar="K",
        help="K-1 interpolated frames between each pair; plays at fps x K",
    )
    video.add_argument(
        "--interpolation", choices=("flow", "blend"), help="how (default flow)"
    )
    video.add_argument("--model", help="model id (default: the served one)")
    video.set_defaults(run=_video)
