"""Voice benchmark (CPU, demo model): streaming latency and real-time factor.

One script, two measurements of the same 5-sentence text, one after the other
so they never share the CPUs:

1. the raw engine in this process (`VoiceEngine`, the voice application's
   own settings from serve_config.yaml): whole `synthesize` and the first
   chunk of `stream`;
2. the served path: `serve run` on a copy of serve_config.yaml holding only
   the voice application (free ports), called through `MaestroClient`:
   whole `Synthesize` and the first message of `StreamSpeech`.

Reported: medians over `--repeats` runs after warm-up, first chunk / whole
(target `voice_first_chunk` in `bench.targets`: the first sentence is out
long before the text is done), real-time factor (wall seconds per second of
audio) and served / raw. `bench_engine` and `measure_served` return
`VoiceTimings`; `section` renders a `VoiceResult` in the suite's report.

Usage: ``python -m bench.voice_bench [--repeats 5] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.log import log, utc_stamp
from bench.lib.markdown import Page, fmt, pyplot, ratio
from bench.lib.procs import STOP_S
from bench.lib.results import from_dict, to_dict
from bench.lib.serve_config import ROOT, app_config, base_config, only_apps
from bench.lib.stack import stack
from bench.targets import TARGETS
from maestro.models_client import default_models

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "She sells sea shells by the sea shore, and the shells she sells are "
    "surely sea shells. "
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood? "
    "Peter Piper picked a peck of pickled peppers before breakfast. "
    "Around the rugged rock the ragged rascal ran all afternoon."
)
SEED = 7
WARMUP = 2
TARGET = TARGETS["voice_first_chunk"]


@dataclass
class VoiceTimings:
    """Medians of one side: whole text, first chunk, whole stream; audio length."""

    whole_s: float
    first_chunk_s: float
    stream_total_s: float
    audio_s: float
    device: str

    @property
    def first_over_whole(self) -> float:
        return self.first_chunk_s / self.whole_s

    @property
    def rtf(self) -> float:
        """Real-time factor: wall seconds per second of audio."""
        return self.whole_s / self.audio_s

    def figures(self) -> dict[str, Any]:
        return {
            **to_dict(self),
            "first_over_whole": self.first_over_whole,
            "rtf": self.rtf,
        }


@dataclass
class VoiceResult:
    raw: VoiceTimings | None = None
    served: VoiceTimings | None = None

    @classmethod
    def from_dicts(cls, raw: dict | None, served: dict | None) -> VoiceResult:
        return cls(*(from_dict(VoiceTimings, x) if x else None for x in (raw, served)))


def timed(run: Callable[[], tuple[float, float]], repeats: int) -> dict[str, float]:
    """Median first-output and total seconds of `run` (after warm-up)."""
    for _ in range(WARMUP):
        run()
    firsts, totals = zip(*(run() for _ in range(repeats)), strict=True)
    return {"first_s": statistics.median(firsts), "total_s": statistics.median(totals)}


def bench_engine(repeats: int) -> VoiceTimings:
    """The raw engine in this process, the voice application's settings."""
    from deployments.engines.voice.engine import VoiceEngine
    from deployments.engines.voice.types import SpeechRequest
    from deployments.voice import resolve_config

    config = resolve_config(app_config(base_config(), "voice")["args"]).engine
    request = SpeechRequest(text=TEXT, seed=SEED)

    async def measure() -> VoiceTimings:
        engine = VoiceEngine(config)
        await engine.start()
        loop = asyncio.get_running_loop()

        def whole() -> tuple[float, float]:
            start = time.perf_counter()
            asyncio.run_coroutine_threadsafe(engine.synthesize(request), loop).result()
            elapsed = time.perf_counter() - start
            return elapsed, elapsed

        def stream() -> tuple[float, float]:
            async def consume() -> tuple[float, float]:
                start = time.perf_counter()
                first = 0.0
                async for _ in engine.stream(request):
                    first = first or time.perf_counter() - start
                return first, time.perf_counter() - start

            return asyncio.run_coroutine_threadsafe(consume(), loop).result()

        # The timing loops block; run them off this loop so the engine's
        # batcher (on this loop) keeps working.
        synth = await asyncio.to_thread(timed, whole, repeats)
        streamed = await asyncio.to_thread(timed, stream, repeats)
        speech = await engine.synthesize(request)
        await engine.shutdown()
        return VoiceTimings(
            whole_s=synth["total_s"],
            first_chunk_s=streamed["first_s"],
            stream_total_s=streamed["total_s"],
            audio_s=speech.info.duration_seconds,
            device=engine.device,
        )

    return asyncio.run(measure())


def bench_served(repeats: int) -> VoiceTimings:
    """Start a voice-only stack, measure it, stop it."""
    config = only_apps(base_config(), {"voice"})
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
        with stack(config, Path(tmp), stop_grace_s=STOP_S) as server:
            return measure_served(server.target, repeats)


def measure_served(target: str, repeats: int) -> VoiceTimings:
    """Whole `Synthesize` and first `StreamSpeech` chunk against a running stack."""
    from maestro import MaestroClient

    with MaestroClient(target, timeout=120) as client:

        def whole() -> tuple[float, float]:
            start = time.perf_counter()
            client.synthesize(TEXT, seed=SEED)
            elapsed = time.perf_counter() - start
            return elapsed, elapsed

        def stream() -> tuple[float, float]:
            start = time.perf_counter()
            first = 0.0
            for _ in client.stream_speech(TEXT, seed=SEED):
                first = first or time.perf_counter() - start
            return first, time.perf_counter() - start

        synth = timed(whole, repeats)
        streamed = timed(stream, repeats)
        reply = client.synthesize(TEXT, seed=SEED)
        (model,) = default_models(client.list_models(["voice"]))
    return VoiceTimings(
        whole_s=synth["total_s"],
        first_chunk_s=streamed["first_s"],
        stream_total_s=streamed["total_s"],
        audio_s=reply.info.duration_seconds,
        device=model.device,
    )


# (label, VoiceTimings figure, the script's format)
ROWS = (
    ("whole text", "whole_s", "{:.3f} s"),
    ("first chunk", "first_chunk_s", "{:.3f} s"),
    ("whole stream", "stream_total_s", "{:.3f} s"),
    ("first chunk / whole", "first_over_whole", "{:.2f}x"),
    ("real-time factor", "rtf", "{:.4f}"),
    ("audio", "audio_s", "{:.2f} s"),
)


def report(
    raw: VoiceTimings | dict[str, Any], served: VoiceTimings | dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The script's Markdown table and JSON document (dicts are read as timings)."""
    raw_t, served_t = (
        x if isinstance(x, VoiceTimings) else from_dict(VoiceTimings, x)
        for x in (raw, served)
    )
    a, b = raw_t.figures(), served_t.figures()
    names = {"whole_s": " (Synthesize)", "first_chunk_s": " (StreamSpeech)"}
    lines = [
        f"Voice, demo model, 5 sentences ({len(TEXT)} characters), "
        f"median of runs, device {raw_t.device}",
        "",
        "| metric | raw engine | served | served / raw |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, form in ROWS:
        r = b[key] / a[key] if a[key] else float("nan")
        lines.append(
            f"| {label}{names.get(key, '')} | {form.format(a[key])} "
            f"| {form.format(b[key])} | {r:.2f}x |"
        )
    verdict = "met" if TARGET.met(served_t.first_over_whole) else "MISSED"
    lines += [
        "",
        f"target: served first chunk {TARGET.want} the whole "
        f"Synthesize: {served_t.first_over_whole:.2f}x ({verdict})",
    ]
    return "\n".join(lines), {"raw_engine": a, "served": b, "text": TEXT}


def section(page: Page, result: VoiceResult) -> None:
    """The suite's voice section: raw vs served, the target, the chart."""
    page.add(
        "",
        "## Voice: first chunk vs whole, served vs raw",
        "",
        "Demo VITS, a 5-sentence text. Raw = `VoiceEngine` in the suite's "
        "process before any server; served = `Synthesize` / `StreamSpeech` "
        "through the ingress. Medians after warm-up. RTF = wall seconds per "
        "second of audio.",
    )
    page.error("voice.raw", "voice.served")
    raw, served = (x.figures() if x else {} for x in (result.raw, result.served))
    page.add(
        "", "| metric | raw engine | served | served / raw |", "|---|---:|---:|---:|"
    )
    for label, key, _ in ROWS:
        unit = " (s)" if key.endswith("_s") else ""
        a, b = raw.get(key), served.get(key)
        page.add(f"| {label}{unit} | {fmt(a, 3)} | {fmt(b, 3)} | {fmt(ratio(b, a))} |")
    if result.served:
        page.target(TARGET, result.served.first_over_whole)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (name, side) in enumerate((("raw engine", raw), ("served", served))):
        if side:
            ax.bar(
                [x + (i - 0.5) * 0.4 for x in range(2)],
                [side["first_chunk_s"], side["whole_s"]],
                0.4,
                label=name,
            )
    ax.set_xticks(range(2), ["first chunk", "whole"])
    ax.set_ylabel("seconds")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    page.chart(fig, "voice", "voice latency")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measured runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    log("raw engine in this process")
    raw = bench_engine(args.repeats)
    log("served through Ray Serve")
    served = bench_served(args.repeats)
    text, data = report(raw, served)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    (args.out / f"voice-{stamp}.md").write_text(text + "\n")
    (args.out / f"voice-{stamp}.json").write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
