"""The suite's GPU section: figures cited from the device machine's report.

The figures live in `bench/data/gpu_reference.json` (copied from the report
it names, one H200 run of `bench.image_gpu` and `bench.voice_gpu`); the CPU
demo machine the suite runs on has no GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.lib.markdown import Page
from bench.targets import TARGETS

REFERENCE = Path(__file__).resolve().parent / "data" / "gpu_reference.json"


def gpu_reference() -> dict[str, Any]:
    """The device machine's figures (`bench/data/gpu_reference.json`)."""
    return dict(json.loads(REFERENCE.read_text()))


def section(page: Page, ref: dict[str, Any] | None = None) -> None:
    ref = ref or gpu_reference()
    image, voice = ref["families"]["image"], ref["families"]["voice"]
    target = TARGETS["gpu_image_engine"]
    image_ratio = image["engine_s"] / image["raw_s"]
    verdict = (
        "met"
        if target.met(round(image_ratio, 3))
        else f"missed by {round(image_ratio, 3) - target.threshold:.3f}"
    )
    without_png = (image["engine_s"] - image["png_encode_s"]) / image["raw_s"]
    first, rtf = voice["first_audio"], voice["rtf_batched"]
    page.add(
        "",
        "## GPU (from the device machine, not this run)",
        "",
        f"Cited from [`{ref['report']}`](../reports/{Path(ref['report']).name}) — "
        f"**{ref['device']}** ({ref['setup']}), engines alone without Ray, random "
        "weights of the real architectures.",
        "",
        "| family | Maestro engine | raw library | engine / raw "
        "| GPU memory (peak allocated) |",
        "|---|---:|---:|---:|---:|",
        f"| {image['what']} | {image['engine_s']:.3f} s | {image['raw_s']:.3f} s "
        f"({image['raw_library']}) | {image_ratio:.3f}x (target ≤ "
        f"{target.threshold:g}: {verdict}; PNG encode is "
        f"{image['png_encode_s']:.3f} s of it, {without_png:.3f}x without) "
        f"| {image['peak_gpu_gib']:.2f} GiB |",
        f"| {voice['what']} | {voice['engine_s']:.3f} s | {voice['raw_s']:.3f} s "
        f"({voice['raw_library']}) | {voice['engine_s'] / voice['raw_s']:.2f}x "
        f"| {voice['peak_gpu_gib']:.2f} GiB |",
        f"| voice, first audio (raw: first sentence alone) | {first['engine_s']:.3f} s "
        f"| {first['raw_s']:.3f} s | {first['engine_s'] / first['raw_s']:.2f}x | |",
        "| voice, RTF batched (engine: 8 concurrent; raw: 5 sentences padded) "
        f"| {rtf['engine']:.4f} | {rtf['raw']:.4f} "
        f"| {rtf['engine'] / rtf['raw']:.2f}x | |",
        "",
        f"Voice engine first chunk / whole on the {ref['device'].split()[-1]}: "
        f"{voice['first_chunk_over_whole']:.2f}x. **Owed**: {ref['owed']}",
    )
