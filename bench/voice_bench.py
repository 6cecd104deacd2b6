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
(target <= 0.35: the first sentence is out long before the text is done),
real-time factor (wall seconds per second of audio) and served / raw.

Usage: ``python -m bench.voice_bench [--repeats 5] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.text_bench import Server, free_port, log, stop, wait_ready
from deployments import launch

ROOT = Path(__file__).resolve().parent.parent
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
FIRST_CHUNK_TARGET = 0.35


def voice_app_config() -> dict[str, Any]:
    """The voice application block of serve_config.yaml."""
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    (voice,) = [a for a in raw["applications"] if a["name"] == "voice"]
    return voice


def timed(run: Callable[[], tuple[float, float]], repeats: int) -> dict[str, float]:
    """Median first-output and total seconds of `run` (after warm-up)."""
    for _ in range(WARMUP):
        run()
    firsts, totals = zip(*(run() for _ in range(repeats)), strict=True)
    return {"first_s": statistics.median(firsts), "total_s": statistics.median(totals)}


# --- raw engine ------------------------------------------------------------------


def bench_engine(repeats: int) -> dict[str, Any]:
    from deployments.engines.voice.engine import VoiceEngine
    from deployments.engines.voice.types import SpeechRequest
    from deployments.voice import resolve_config

    config = resolve_config(voice_app_config()["args"]).engine
    request = SpeechRequest(text=TEXT, seed=SEED)

    async def measure() -> dict[str, Any]:
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
        return {
            "whole_s": synth["total_s"],
            "first_chunk_s": streamed["first_s"],
            "stream_total_s": streamed["total_s"],
            "audio_s": speech.info.duration_seconds,
            "device": engine.device,
        }

    return asyncio.run(measure())


# --- served ---------------------------------------------------------------------


@contextmanager
def voice_server(workdir: Path) -> Iterator[Server]:
    """`serve run` with only the voice application, on free ports."""
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    raw["applications"] = [voice_app_config()]
    port = free_port()
    raw["grpc_options"]["port"] = port
    raw["http_options"]["port"] = free_port()
    path = workdir / "serve_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = launch.side_by_side_environment()
    log_path = workdir / "maestro.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            launch.command(path),
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server("maestro", proc, f"127.0.0.1:{port}", log_path)
    try:
        log(f"voice server ready in {wait_ready(server, _voice_ready):.0f} s")
        yield server
    finally:
        log("voice server: stopping")
        stop(server)


def _voice_ready(target: str) -> bool:
    from grpc_health.v1 import health_pb2

    from maestro import MaestroClient, MaestroRpcError

    with MaestroClient(target, timeout=5) as client:
        try:
            return client.health("voice") == health_pb2.HealthCheckResponse.SERVING
        except MaestroRpcError:
            return False


def bench_served(repeats: int) -> dict[str, Any]:
    """Start a voice-only stack, measure it, stop it."""
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
        with voice_server(Path(tmp)) as server:
            return measure_served(server.target, repeats)


def measure_served(target: str, repeats: int) -> dict[str, Any]:
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
        (model,) = client.list_models(["voice"])
    return {
        "whole_s": synth["total_s"],
        "first_chunk_s": streamed["first_s"],
        "stream_total_s": streamed["total_s"],
        "audio_s": reply.info.duration_seconds,
        "device": model.device,
    }


# --- report ---------------------------------------------------------------------


def report(raw: dict[str, Any], served: dict[str, Any]) -> tuple[str, dict]:
    for side in (raw, served):
        side["first_over_whole"] = side["first_chunk_s"] / side["whole_s"]
        side["rtf"] = side["whole_s"] / side["audio_s"]
    rows = [
        ("whole text (Synthesize)", "whole_s", "{:.3f} s"),
        ("first chunk (StreamSpeech)", "first_chunk_s", "{:.3f} s"),
        ("whole stream", "stream_total_s", "{:.3f} s"),
        ("first chunk / whole", "first_over_whole", "{:.2f}x"),
        ("real-time factor", "rtf", "{:.4f}"),
        ("audio", "audio_s", "{:.2f} s"),
    ]
    lines = [
        f"Voice, demo model, 5 sentences ({len(TEXT)} characters), "
        f"median of runs, device {raw['device']}",
        "",
        "| metric | raw engine | served | served / raw |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, fmt in rows:
        ratio = served[key] / raw[key] if raw[key] else float("nan")
        lines.append(
            f"| {label} | {fmt.format(raw[key])} | {fmt.format(served[key])} "
            f"| {ratio:.2f}x |"
        )
    verdict = "met" if served["first_over_whole"] <= FIRST_CHUNK_TARGET else "MISSED"
    lines += [
        "",
        f"target: served first chunk <= {FIRST_CHUNK_TARGET}x the whole "
        f"Synthesize: {served['first_over_whole']:.2f}x ({verdict})",
    ]
    return "\n".join(lines), {"raw_engine": raw, "served": served, "text": TEXT}


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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"voice-{stamp}.md").write_text(text + "\n")
    (args.out / f"voice-{stamp}.json").write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
