"""Load generator: one streaming client per side, one JSON line of results.

Runs in its own process (the driver starts it) so that its CPU use shows up as
a separate process on the same machine, the same for both sides, and so that
nothing of the driver (tokenizer, subprocess bookkeeping) shares its event
loop. Both sides get the same prompts: Maestro the text, vLLM the token ids
that text encodes to, so the engines see identical inputs.

The `engine` backend is the limit: vLLM's `AsyncLLM` in this very process,
started with the text application's engine settings from serve_config.yaml,
fed the same token ids, every engine output counted as a message. Its start
(~15 s) happens once, before any run: `--run PROMPTS:CONCURRENCY:WARMUP` may be
given several times, and each run prints its own JSON line.

Usage: ``python -m bench.loadgen --backend maestro|vllm|engine [--target
HOST:PORT] --prompts FILE --concurrency N [--warmup W] [--max-tokens 64]``
or ``... --run FILE:N:W [--run FILE:N:W ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ID = "maestro-demo-llm"


@dataclass
class Prompt:
    """One request's input: the text Maestro encodes and the ids it gives."""

    text: str
    ids: list[int]


@dataclass
class Trace:
    """Arrival times of one stream's messages (perf_counter seconds).

    A message is one unit the server sends that carries output: a gRPC
    `StreamTextResponse`, or an SSE event with a choice. The random-weight demo
    model often emits tokens that decode to no text (special or partial-byte
    tokens); both servers still send a message for them, so the first message
    marks the first token, while the first text depends on the model's babble.
    """

    sent: float
    message_times: list[float] = field(default_factory=list)
    first_text: float | None = None
    text: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    error: str = ""

    def on_message(self, text: str) -> None:
        now = time.perf_counter()
        self.message_times.append(now)
        self.text.append(text)
        if text and self.first_text is None:
            self.first_text = now


Sender = Callable[[Prompt, Trace], Awaitable[None]]


def load_prompts(path: Path) -> list[Prompt]:
    return [Prompt(p["text"], p["ids"]) for p in json.loads(path.read_text())]


async def maestro_sender(
    target: str, max_tokens: int
) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    """`StreamText` over one shared channel, as an application would use it."""
    from maestro import AsyncMaestroClient

    client = AsyncMaestroClient(target, timeout=600)

    async def send(prompt: Prompt, trace: Trace) -> None:
        stream = client.stream_text(prompt.text, max_tokens=max_tokens, temperature=0.0)
        async for message in stream:
            trace.on_message(message.text)
            if message.HasField("usage"):
                trace.completion_tokens = message.usage.completion_tokens

    return send, client.close


async def vllm_sender(
    target: str, max_tokens: int
) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    """`/v1/completions` with SSE; the prompt is the token ids Maestro would use.

    A message is one `data:` event carrying a choice; the trailing usage-only
    event and `[DONE]` are bookkeeping, not stream messages.
    """
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=600),
    )
    url = f"http://{target}/v1/completions"

    async def send(prompt: Prompt, trace: Trace) -> None:
        body = {
            "model": MODEL_ID,
            "prompt": prompt.ids,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with session.post(url, json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
            async for raw in response.content:
                _on_sse_line(raw, trace)

    return send, session.close


async def engine_sender(
    target: str, max_tokens: int
) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    """vLLM's `AsyncLLM` in this process: no server, no serialization (the limit).

    Built by Maestro's `TextEngine` from the text application's settings, so
    the engine arguments are exactly the served ones; requests go straight to
    `AsyncLLM.generate` with the prompt token ids. `target` is unused.
    """
    import yaml
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from deployments.engines.text.engine import TextEngine
    from deployments.text import resolve_config

    root = Path(__file__).resolve().parent.parent
    config = yaml.safe_load((root / "serve_config.yaml").read_text())
    (text,) = [a for a in config["applications"] if a["name"] == "text"]
    engine = TextEngine(resolve_config(text["args"]).engine)
    await engine.start()
    llm = engine._llm

    async def send(prompt: Prompt, trace: Trace) -> None:
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0,
            output_kind=RequestOutputKind.DELTA,
        )
        request = {"prompt_token_ids": prompt.ids}
        async for out in llm.generate(request, params, request_id=uuid.uuid4().hex):
            choice = out.outputs[0]
            trace.on_message(choice.text)
            trace.completion_tokens += len(choice.token_ids)

    async def close() -> None:
        await engine.shutdown()

    return send, close


def _on_sse_line(raw: bytes, trace: Trace) -> None:
    line = raw.strip()
    if not line.startswith(b"data:"):
        return
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return
    event = json.loads(payload)
    if event.get("choices"):
        trace.on_message(event["choices"][0].get("text") or "")
    if usage := event.get("usage"):
        trace.completion_tokens = usage["completion_tokens"]


async def run_all(
    send: Sender, prompts: Sequence[Prompt], concurrency: int
) -> list[Trace]:
    """Every prompt once, at most `concurrency` in flight (a closed loop)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: Prompt) -> Trace:
        async with gate:
            trace = Trace(sent=time.perf_counter())
            try:
                await send(prompt, trace)
            except Exception as exc:  # a failed request is counted, not fatal
                trace.error = f"{type(exc).__name__}: {exc}"[:500]
            return trace

    return await asyncio.gather(*(one(p) for p in prompts))


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 2)


def summarize(traces: Sequence[Trace], wall_s: float) -> dict[str, Any]:
    """The run's figures; per-request series are pooled before percentiles.

    `output_sha256` hashes every completion in prompt order: equal on both
    sides means both engines did the same work (greedy, same token ids).
    """
    ok = [t for t in traces if not t.error and t.message_times]
    ttft = [t.message_times[0] - t.sent for t in ok]
    ttft_text = [t.first_text - t.sent for t in ok if t.first_text is not None]
    gaps = [float(g) for t in ok for g in np.diff(t.message_times)]
    itl = [
        (t.message_times[-1] - t.message_times[0]) / (t.completion_tokens - 1)
        for t in ok
        if t.completion_tokens > 1
    ]
    tokens = sum(t.completion_tokens for t in ok)
    errors = [t.error or "no message" for t in traces if t.error or not t.message_times]
    texts = "\x00".join("".join(t.text) for t in traces)
    return {
        "requests": len(traces),
        "ok": len(ok),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "wall_s": round(wall_s, 3),
        "completion_tokens": tokens,
        "output_tok_s": round(tokens / wall_s, 2),
        "requests_s": round(len(ok) / wall_s, 3),
        "ttft_p50_ms": _ms(_pct(ttft, 50)),
        "ttft_p99_ms": _ms(_pct(ttft, 99)),
        "first_text_p50_ms": _ms(_pct(ttft_text, 50)),
        "streams_without_text": len(ok) - len(ttft_text),
        "gap_p50_ms": _ms(_pct(gaps, 50)),
        "gap_p99_ms": _ms(_pct(gaps, 99)),
        "messages_per_stream": round(
            float(np.mean([len(t.message_times) for t in ok])) if ok else 0.0, 2
        ),
        "itl_p50_ms": _ms(_pct(itl, 50)),
        "itl_p99_ms": _ms(_pct(itl, 99)),
        "output_sha256": hashlib.sha256(texts.encode()).hexdigest(),
    }


async def measure(
    send: Sender, prompts: Sequence[Prompt], concurrency: int, warmup: int
) -> dict[str, Any]:
    """Warm up (connections, engine shapes), then measure the remaining prompts."""
    warm, measured = prompts[:warmup], prompts[warmup:]
    if warm:
        failed = [t.error for t in await run_all(send, warm, concurrency)]
        if any(failed):
            raise RuntimeError(f"warm-up failed: {next(e for e in failed if e)}")
    cpu0, start = time.process_time(), time.perf_counter()
    traces = await run_all(send, measured, concurrency)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    result: dict[str, Any] = {"concurrency": concurrency}
    result.update(summarize(traces, wall))
    result["loadgen_cpu_s"] = round(cpu, 3)
    return result


def _runs(args: argparse.Namespace) -> list[tuple[Path, int, int]]:
    """(prompts file, concurrency, warm-up) of every run asked for."""
    runs = []
    for spec in args.run or []:
        path, concurrency, warmup = re.fullmatch(r"(.+):(\d+):(\d+)", spec).groups()  # type: ignore[union-attr]
        runs.append((Path(path), int(concurrency), int(warmup)))
    if args.prompts is not None:
        if args.concurrency is None:
            raise SystemExit("--prompts needs --concurrency")
        runs.append((args.prompts, args.concurrency, args.warmup))
    if not runs:
        raise SystemExit("nothing to run: give --prompts/--concurrency or --run")
    return runs


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run against one sender (one engine start for `engine`)."""
    make = {
        "maestro": maestro_sender,
        "vllm": vllm_sender,
        "engine": engine_sender,
    }[args.backend]
    send, close = await make(args.target, args.max_tokens)
    results = []
    try:
        for path, concurrency, warmup in _runs(args):
            result = await measure(send, load_prompts(path), concurrency, warmup)
            result["backend"] = args.backend
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        await close()
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("maestro", "vllm", "engine"), required=True)
    p.add_argument("--target", default="", help="host:port (not for engine)")
    p.add_argument("--prompts", type=Path, help="JSON [{text, ids}]")
    p.add_argument("--concurrency", type=int)
    p.add_argument(
        "--run",
        action="append",
        metavar="FILE:CONCURRENCY:WARMUP",
        help="one measured run (repeatable); each prints a JSON line",
    )
    p.add_argument("--warmup", type=int, default=0, help="leading prompts unmeasured")
    p.add_argument("--max-tokens", type=int, default=64)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(bench(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
