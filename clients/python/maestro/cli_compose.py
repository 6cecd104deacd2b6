"""`maestro compose "a brief" --out DIR`: an illustrated, narrated storyboard.

Streams Compose and prints a line per event (the plan, then each scene's
image, audio or error as it finishes). Writes into DIR: `storyboard.json`
(title, scenes, files, errors, timings), `scene-NN.<ext>` images and audio,
and `index.html`, a page with each image above an audio player that opens in
any browser from the file system. Ctrl-C cancels the whole composition on the
server.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from maestro.client import MaestroClient
from maestro.v1 import studio_pb2, voice_pb2

__all__ = ["add_compose_parser", "render_html", "write_storyboard"]

_IMAGE_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_AUDIO = {
    voice_pb2.AUDIO_FORMAT_UNSPECIFIED: ("wav", "audio/wav"),
    voice_pb2.AUDIO_FORMAT_WAV: ("wav", "audio/wav"),
    voice_pb2.AUDIO_FORMAT_FLAC: ("flac", "audio/flac"),
    voice_pb2.AUDIO_FORMAT_PCM_S16LE: ("pcm", "application/octet-stream"),
}


class _Storyboard:
    """Collects events and writes each file the moment it arrives."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.title = ""
        self.scenes: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}
        self.summary: dict[str, Any] = {}

    def add(self, event: studio_pb2.ComposeResponse) -> str:
        """Record one event; returns the progress line to print."""
        kind = event.WhichOneof("event")
        if kind == "plan":
            self.title = event.plan.title
            self.scenes = [
                {
                    "index": s.index,
                    "narration": s.narration,
                    "image_prompt": s.image_prompt,
                    "image": None,
                    "audio": None,
                    "errors": [],
                }
                for s in event.plan.scenes
            ]
            return f"plan: {self.title!r}, {len(self.scenes)} scenes"
        if kind == "scene_image":
            img = event.scene_image.image
            name = f"scene-{event.scene_image.scene + 1:02d}."
            name += _IMAGE_EXT.get(img.mime_type, "img")
            (self.out / name).write_bytes(img.data)
            self.scenes[event.scene_image.scene]["image"] = {
                "file": name,
                "mime_type": img.mime_type,
                "width": img.width,
                "height": img.height,
                "seed": img.seed,
            }
            return self._line(
                event.scene_image.scene, f"image {img.width}x{img.height}"
            )
        if kind == "scene_audio":
            audio = event.scene_audio
            ext, mime = _AUDIO.get(audio.info.format, ("audio", "audio/wav"))
            name = f"scene-{audio.scene + 1:02d}.{ext}"
            (self.out / name).write_bytes(audio.audio)
            self.scenes[audio.scene]["audio"] = {
                "file": name,
                "mime_type": mime,
                "sample_rate": audio.info.sample_rate,
                "seconds": audio.info.duration_seconds,
            }
            seconds = audio.info.duration_seconds
            return self._line(audio.scene, f"audio {seconds:.1f} s")
        if kind == "scene_error":
            err = event.scene_error
            self.scenes[err.scene]["errors"].append(
                {"stage": err.stage, "code": err.code, "message": err.message}
            )
            return self._line(
                err.scene, f"{err.stage} FAILED {err.code}: {err.message}"
            )
        done = event.done
        self.timings = {t.stage: round(t.seconds, 3) for t in done.timings}
        self.summary = {
            "scenes_succeeded": done.scenes_succeeded,
            "scenes_failed": done.scenes_failed,
            "trace_id": done.trace_id,
        }
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items())
        return (
            f"done: {done.scenes_succeeded} scenes ok, {done.scenes_failed} failed"
            f" ({stages})"
        )

    def _line(self, index: int, what: str) -> str:
        scene = self.scenes[index]
        parts = ("image", "audio")
        finished = sum(scene[p] is not None for p in parts) + len(scene["errors"])
        return f"scene {index + 1}/{len(self.scenes)}: {what} [{finished}/2]"

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "scenes": self.scenes,
            "timings": self.timings,
            **self.summary,
        }


def render_html(storyboard: dict[str, Any]) -> str:
    """A self-contained page: each scene's image, narration and audio player."""
    title = html.escape(storyboard["title"] or "Storyboard")
    cards = []
    for scene in storyboard["scenes"]:
        image, audio = scene.get("image"), scene.get("audio")
        parts = [f"<h2>Scene {scene['index'] + 1}</h2>"]
        if image:
            parts.append(
                f'<img src="{html.escape(image["file"])}" '
                f'alt="{html.escape(scene["image_prompt"])}" '
                f'width="{max(image["width"], 256)}">'
            )
        parts.append(f"<p>{html.escape(scene['narration'])}</p>")
        if audio:
            parts.append(
                f'<audio controls src="{html.escape(audio["file"])}" '
                f'type="{audio["mime_type"]}"></audio>'
            )
        for err in scene["errors"]:
            parts.append(
                f'<p class="error">{html.escape(err["stage"])} failed: '
                f"{html.escape(err['code'])} {html.escape(err['message'])}</p>"
            )
        cards.append('<section class="scene">' + "".join(parts) + "</section>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; background: #fafafa; }}
.scene {{ display: inline-block; vertical-align: top; width: 300px;
  margin: 0 1em 1em 0; padding: 1em; background: #fff; border: 1px solid #ddd; }}
.scene img {{ image-rendering: pixelated; max-width: 100%; }}
.error {{ color: #b00; }}
</style></head>
<body><h1>{title}</h1>
{chr(10).join(cards)}
</body></html>
"""


def write_storyboard(out: Path, board: _Storyboard) -> None:
    data = board.as_json()
    (out / "storyboard.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "index.html").write_text(render_html(data))


def _compose(client: MaestroClient, args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    board = _Storyboard(out)
    params = {
        "num_scenes": args.scenes,
        "style": args.style,
        "seed": args.seed,
        "width": args.width,
        "height": args.height,
        "steps": args.steps,
        "voice": args.voice,
        "speaking_rate": args.rate,
        "temperature": args.temperature,
        "text_model": args.text_model,
        "image_model": args.image_model,
        "voice_model": args.voice_model,
    }
    try:
        for event in client.compose(args.brief, **params):
            print(board.add(event), file=sys.stderr, flush=True)
    finally:
        if board.scenes:  # whatever arrived is kept, even after an error
            write_storyboard(out, board)
    print(out / "index.html")
    return 0 if board.summary.get("scenes_failed", 1) == 0 else 3


def add_compose_parser(subparsers: Any) -> None:
    """Register the `compose` subcommand on the `maestro` parser."""
    compose = subparsers.add_parser(
        "compose", help="illustrated, narrated storyboard from a brief"
    )
    compose.add_argument("brief")
    compose.add_argument("--out", default="storyboard", help="output folder")
    compose.add_argument("--scenes", type=int, help="number of scenes")
    compose.add_argument("--style", help="folded into every image prompt")
    compose.add_argument("--seed", type=int, help="same seed, same storyboard")
    compose.add_argument("--width", type=int)
    compose.add_argument("--height", type=int)
    compose.add_argument("--steps", type=int, help="denoising steps")
    compose.add_argument("--voice", help="speaker name")
    compose.add_argument("--rate", type=float, help="speaking rate, 1.0 is normal")
    compose.add_argument("--temperature", type=float, help="plan sampling")
    for stage in ("text", "image", "voice"):
        compose.add_argument(
            f"--{stage}-model",
            help=f"one of the {stage} family's models (default: its default)",
        )
    compose.set_defaults(run=_compose)
