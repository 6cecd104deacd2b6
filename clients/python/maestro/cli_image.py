"""`maestro image "prompt" -o out.png`: generate an image with a progress bar.

The bar is driven by StreamImage's per-step progress events; the images are
written when the result arrives (with several images, `out.png` becomes
`out-0.png`, `out-1.png`, ...). Ctrl-C cancels the request on the server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from maestro.cli_progress import waiting_for_model
from maestro.client import MaestroClient
from maestro.v1 import image_pb2

__all__ = ["add_image_parser", "parse_lora", "parse_size"]

_FORMAT_BY_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def parse_size(text: str) -> tuple[int, int]:
    """ "512x768" -> (512, 768); "512" -> (512, 512)."""
    try:
        width, _, height = text.lower().partition("x")
        return int(width), int(height or width)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH") from None


def parse_lora(text: str) -> tuple[str, float]:
    """ "name:0.8" -> ("name", 0.8); "name" -> ("name", 1.0)."""
    name, _, weight = text.rpartition(":") if ":" in text else (text, "", "1")
    try:
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"lora {text!r}: expected NAME:WEIGHT"
        ) from None


def parse_control(text: str) -> image_pb2.ControlImage:
    """ "canny:edges.png:0.8" -> a ControlImage of that map; a `+` after the
    type ("canny+:photo.jpg") asks the server for the canny map itself."""
    kind, _, rest = text.partition(":")
    path, _, scale = rest.partition(":")
    if not kind or not path:
        raise argparse.ArgumentTypeError(
            f"control {text!r}: expected TYPE:IMAGE[:SCALE] (canny+: edges computed)"
        )
    try:
        control = image_pb2.ControlImage(
            type=kind.removesuffix("+"),
            image=Path(path).read_bytes(),
            preprocess=kind.endswith("+"),
        )
        if scale:
            control.scale = float(scale)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"control {text!r}: {exc}") from None
    return control


def _outputs(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(count)]


def _image(client: MaestroClient, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    out = Path(args.output)
    width, height = args.size or (None, None)
    params: dict[str, Any] = {
        "negative_prompt": args.negative,
        "width": width,
        "height": height,
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "num_images": args.num_images,
        "scheduler": args.scheduler,
        "format": _FORMAT_BY_SUFFIX.get(out.suffix.lower(), "png"),
        "quality": args.quality,
        "model": args.model,
        "init_image": Path(args.init).read_bytes() if args.init else None,
        "strength": args.strength,
        "style": args.style,
        "controls": args.control,
        "ip_adapter_image": Path(args.ip_image).read_bytes() if args.ip_image else None,
        "ip_adapter_scale": args.ip_scale,
    }
    result: image_pb2.GenerateImageResponse | None = None
    with tqdm(desc="denoising", unit="step", file=sys.stderr, leave=False) as bar:
        for message in client.stream_image(args.prompt, loras=args.lora, **params):
            if waiting_for_model(message):
                continue
            if message.HasField("progress"):
                bar.total = message.progress.total_steps
                bar.update(message.progress.step - bar.n)
            else:
                result = message.result
    if result is None:  # pragma: no cover - the server always ends with one
        print("maestro: the stream ended without images", file=sys.stderr)
        return 1
    for path, image in zip(
        _outputs(out, len(result.images)), result.images, strict=True
    ):
        path.write_bytes(image.data)
        size = f"{image.width}x{image.height}"
        print(f"{path} ({size} {image.mime_type}, seed {image.seed})")
    return 0


def add_image_parser(subparsers: Any) -> None:
    """Register the `image` subcommand on the `maestro` parser."""
    image = subparsers.add_parser(
        "image", help="generate an image (progress bar from StreamImage)"
    )
    image.add_argument("prompt")
    image.add_argument("-o", "--output", default="image.png", help="PNG/JPEG/WebP")
    image.add_argument("--negative", help="negative prompt")
    image.add_argument("--size", type=parse_size, help="WxH, e.g. 512x512")
    image.add_argument("--steps", type=int)
    image.add_argument("--guidance", type=float, help="guidance scale")
    image.add_argument("--seed", type=int, help="image i uses seed + i")
    image.add_argument("-n", "--num-images", type=int)
    image.add_argument("--scheduler", help="see `maestro models --json` limits")
    image.add_argument("--quality", type=int, help="JPEG/WebP quality 1..100")
    image.add_argument(
        "--lora",
        type=parse_lora,
        action="append",
        metavar="NAME:WEIGHT",
        help="apply a configured LoRA adapter (repeatable)",
    )
    image.add_argument("--init", metavar="IMAGE", help="image-to-image input")
    image.add_argument("--strength", type=float, help="image-to-image strength")
    image.add_argument("--model", help="model id (default: the served one)")
    image.add_argument(
        "--style", help="a style preset of the model (`maestro models` limits)"
    )
    image.add_argument(
        "--control",
        type=parse_control,
        action="append",
        metavar="TYPE:IMAGE[:SCALE]",
        help="ControlNet map, e.g. depth:d.png:0.8; canny+:photo.jpg computes "
        "the edges on the server (repeatable)",
    )
    image.add_argument(
        "--ip-image", metavar="IMAGE", help="IP-Adapter reference image (its look)"
    )
    image.add_argument("--ip-scale", type=float, help="IP-Adapter scale 0..2")
    image.set_defaults(run=_image)
