"""Voice engine alone on a GPU: MMS-TTS-sized VITS, next to plain transformers.

Builds a VITS with the MMS-TTS-eng architecture (transformers' `VitsConfig()`
defaults: 36 M parameters, one speaker, 16 kHz) and random weights (same
compute as trained ones), then times, on one device, in one process:

- plain transformers: the whole 5-sentence text in one `VitsModel` call,
  the first sentence alone, and the 5 sentences as one padded batch;
- Maestro's `VoiceEngine` on the same checkpoint: whole `synthesize`
  (segments run one per batch), time to the first `stream` chunk, and
  `--concurrency` requests at once (segments of different requests share
  padded batches).

Reported: medians, real-time factors (wall seconds per audio second) and the
ratios engine / plain. No Ray, no gRPC: `bench.voice_bench` measures the
served path. `--device cpu --small` runs the same code on the demo-sized
model in seconds (the test suite does, so the script stays runnable).

Usage: ``python -m bench.voice_gpu [--device cuda] [--small] [--repeats 5]
[--concurrency 8] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

TEXT = (
    "The quick brown fox jumps over the lazy dog near the quiet river bank. "
    "She sells sea shells by the sea shore while the sun sets slowly. "
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood. "
    "Peter Piper picked a peck of pickled peppers before the long journey. "
    "Around the rugged rock the ragged rascal ran until the evening came."
)
SENTENCES = [s.strip() + "." for s in TEXT.split(".") if s.strip()]
WARMUP = 2


def build_checkpoint(out: Path, *, small: bool) -> Path:
    """Random-weight VITS + character tokenizer in `out` (seeded)."""
    if small:
        from models.voice_demo import build_voice_model

        return build_voice_model(out / "small")
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    from models.voice_demo import CHARACTERS, PAD

    path = out / "mms-size"
    path.mkdir(parents=True)
    vocab = {PAD: 0, **{c: i + 1 for i, c in enumerate(CHARACTERS)}}
    (path / "vocab.json").write_text(json.dumps(vocab))
    VitsTokenizer(
        str(path / "vocab.json"), pad_token=PAD, unk_token=PAD, phonemize=False
    ).save_pretrained(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # Defaults are MMS-TTS-eng's shape: hidden 192, 6 layers, 4 flows,
        # HiFi-GAN 512 channels with upsampling 8*8*2*2.
        model = VitsModel(VitsConfig(vocab_size=len(vocab), pad_token_id=0))
    model.save_pretrained(path)
    return path


def _median_time(run: Callable[[], Any], repeats: int, sync: Callable[[], None]):
    for _ in range(WARMUP):
        run()
        sync()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_plain(path: Path, device: str, repeats: int) -> dict[str, float]:
    """`VitsModel.__call__` as transformers documents it, no Maestro code."""
    import torch
    from transformers import VitsModel, VitsTokenizer

    tokenizer = VitsTokenizer.from_pretrained(path)
    model = VitsModel.from_pretrained(path).to(device).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rate = model.config.sampling_rate

    def call(texts: list[str]) -> float:
        inputs = tokenizer(texts, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            out = model(**inputs)
        return float(out.sequence_lengths.sum()) / rate  # seconds of audio

    whole_s, whole_audio = _median_time(lambda: call([TEXT]), repeats, sync)
    first_s, first_audio = _median_time(lambda: call(SENTENCES[:1]), repeats, sync)
    batch_s, batch_audio = _median_time(lambda: call(SENTENCES), repeats, sync)
    return {
        "whole_s": whole_s,
        "whole_audio_s": whole_audio,
        "first_sentence_s": first_s,
        "batch5_s": batch_s,
        "batch5_audio_s": batch_audio,
    }


def bench_engine(
    path: Path, device: str, repeats: int, concurrency: int
) -> dict[str, float]:
    from deployments.engines.voice.config import VoiceBatchingConfig, VoiceEngineConfig
    from deployments.engines.voice.engine import VoiceEngine
    from deployments.engines.voice.types import SpeechRequest

    config = VoiceEngineConfig(
        model=str(path),
        device=device,  # type: ignore[arg-type]
        batching=VoiceBatchingConfig(max_batch_size=16, max_wait_ms=2),
    )

    async def median(run: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
        for _ in range(WARMUP):
            await run()
        times, result = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            result = await run()
            times.append(time.perf_counter() - start)
        return statistics.median(times), result

    async def measure() -> dict[str, float]:
        engine = VoiceEngine(config)
        await engine.start()
        request = SpeechRequest(text=TEXT, seed=1, format="pcm_s16le")

        async def first_chunk() -> float:
            # The stream is drained so no cancelled segment is still on the
            # worker when the next run starts.
            start = time.perf_counter()
            first = 0.0
            async for _ in engine.stream(request):
                first = first or time.perf_counter() - start
            return first

        async def together() -> float:
            replies = await asyncio.gather(
                *(
                    engine.synthesize(
                        SpeechRequest(text=TEXT, seed=i, format="pcm_s16le")
                    )
                    for i in range(concurrency)
                )
            )
            return sum(r.info.duration_seconds for r in replies)

        whole_s, speech = await median(lambda: engine.synthesize(request))
        firsts = [await first_chunk() for _ in range(WARMUP + repeats)]
        first_s = statistics.median(firsts[WARMUP:])
        many_s, many_audio = await median(together)
        sizes = dict(engine.batcher.stats.sizes)
        await engine.shutdown()
        import torch

        peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
        return {
            "peak_gpu_gib": peak / 2**30,
            "whole_s": whole_s,
            "whole_audio_s": speech.info.duration_seconds,
            "first_chunk_s": first_s,
            "concurrent_s": many_s,
            "concurrent_audio_s": many_audio,
            "largest_batch": max(sizes),
        }

    return asyncio.run(measure())


def report(plain: dict[str, float], engine: dict[str, float], args: Any) -> str:
    rtf_plain = plain["whole_s"] / plain["whole_audio_s"]
    rtf_engine = engine["whole_s"] / engine["whole_audio_s"]
    rtf_batch = plain["batch5_s"] / plain["batch5_audio_s"]
    rtf_many = engine["concurrent_s"] / engine["concurrent_audio_s"]
    rows = [
        ("whole text, s", plain["whole_s"], engine["whole_s"]),
        ("real-time factor, whole text", rtf_plain, rtf_engine),
        (
            "first audio, s (plain: first sentence alone)",
            plain["first_sentence_s"],
            engine["first_chunk_s"],
        ),
        (
            f"RTF, batched (plain: 5 sentences padded; engine: {args.concurrency}"
            " concurrent requests)",
            rtf_batch,
            rtf_many,
        ),
    ]
    lines = [
        f"VITS {'demo-size' if args.small else 'MMS-TTS-eng-size'}, random "
        f"weights, device {args.device}, median of {args.repeats}",
        "",
        "| metric | plain transformers | Maestro engine | engine / plain |",
        "| --- | --- | --- | --- |",
    ]
    for label, a, b in rows:
        lines.append(f"| {label} | {a:.4f} | {b:.4f} | {b / a:.2f}x |")
    lines += [
        "",
        f"engine first chunk / engine whole: "
        f"{engine['first_chunk_s'] / engine['whole_s']:.2f}x; largest batch "
        f"{engine['largest_batch']}; audio {engine['whole_audio_s']:.2f} s "
        f"(engine) vs {plain['whole_audio_s']:.2f} s (plain, one call)",
    ]
    if args.device == "cuda":
        lines.append(
            f"peak GPU memory allocated (process, both sides): "
            f"{engine['peak_gpu_gib']:.2f} GiB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--small", action="store_true", help="demo-size model")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voice-gpu-") as tmp:
        path = build_checkpoint(Path(tmp), small=args.small)
        plain = bench_plain(path, args.device, args.repeats)
        engine = bench_engine(path, args.device, args.repeats, args.concurrency)
    print(report(plain, engine, args))
    if args.json:
        args.json.write_text(json.dumps({"plain": plain, "engine": engine}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
