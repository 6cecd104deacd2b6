"""Platform overhead, measured: Ray's ingress and one DeploymentHandle hop.

The client side of `bench.hop` (which holds the `hop` application and the
bare grpcio server): closed-loop latency of `ListModels` behind Ray's ingress
vs the bare server, and of `GenerateText` sent straight to `text` vs through
`hop`. `measure_ingress` and `measure_handle_hop` return the two halves of a
`PlatformResult`; `section` renders one in the suite's report.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.hop import HOP_APP
from bench.lib.markdown import Page, fmt, pyplot, ratio
from bench.lib.results import int_keys
from bench.lib.serve_config import ROOT
from deployments.launch import free_port
from maestro.v1 import models_pb2, models_pb2_grpc, text_pb2

# Tokens of each GenerateText call of the hop measurement.
HOP_MAX_TOKENS = 32


@dataclass
class PlatformResult:
    """`list_models`: side -> "c1"/"c16" -> latency stats; `handle_hop`:
    concurrency -> "direct"/"handle_hop" -> latency stats."""

    list_models: dict[str, dict[str, dict[str, Any]]] | None = None
    handle_hop: dict[int, dict[str, dict[str, Any]]] | None = None
    max_tokens: int = HOP_MAX_TOKENS

    @classmethod
    def from_dicts(
        cls, list_models: dict | None, handle_hop: dict | None
    ) -> PlatformResult:
        return cls(list_models or None, int_keys(handle_hop) if handle_hop else None)


def _stats(latencies: list[float], wall: float) -> dict[str, Any]:
    ms = np.array(latencies) * 1000.0
    return {
        "calls": len(latencies),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "calls_per_s": round(len(latencies) / wall, 2),
    }


async def _closed_loop(
    call: Callable[[int], Awaitable[Any]], calls: int, concurrency: int
) -> dict[str, Any]:
    """`calls` calls from `concurrency` clients; per-call latency and rate."""
    latencies: list[float] = []
    counter = iter(range(calls))
    errors: list[str] = []

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = _stats(latencies, time.perf_counter() - start) if latencies else {}
    result.update(concurrency=concurrency, errors=len(errors))
    if errors:
        result["first_error"] = errors[0]
    return result


async def list_models_latency(
    target: str, application: str | None, calls: int, concurrency: int
) -> dict[str, Any]:
    """ListModels round trips (after 20 warm-up calls) on one channel."""
    import grpc

    metadata = (("application", application),) if application else None
    async with grpc.aio.insecure_channel(target) as channel:
        stub = models_pb2_grpc.ModelServiceStub(channel)
        request = models_pb2.ListModelsRequest()

        async def call(_: int) -> Any:
            return await stub.ListModels(request, metadata=metadata, timeout=30)

        for i in range(20):
            await call(i)
        return await _closed_loop(call, calls, concurrency)


async def generate_latency(
    target: str, application: str, calls: int, concurrency: int, max_tokens: int
) -> dict[str, Any]:
    """Unary GenerateText (greedy, `max_tokens`), routed to `application`."""
    import grpc

    from maestro.v1 import text_pb2_grpc

    metadata = (("application", application),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = text_pb2_grpc.TextServiceStub(channel)

        async def call(i: int) -> Any:
            request = text_pb2.GenerateTextRequest(
                prompt=f"the quiet river {i} walks to the old stone",
                max_tokens=max_tokens,
                temperature=0.0,
            )
            return await stub.GenerateText(request, metadata=metadata, timeout=300)

        for i in range(min(concurrency, 8)):
            await call(-1 - i)
        return await _closed_loop(call, calls, concurrency)


def measure_ingress(target: str, calls: int) -> dict[str, Any]:
    """ListModels behind Ray's ingress vs the bare grpcio server (own process)."""
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "bench.hop", "--serve-bare", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bare.stdout is not None
        if bare.stdout.readline().strip() != "ready":
            raise RuntimeError("bare grpcio server did not start")
        out: dict[str, Any] = {}
        for label, tgt, app in (
            ("ray_ingress", target, HOP_APP),
            ("bare_grpcio", f"127.0.0.1:{port}", None),
        ):
            out[label] = {
                "c1": asyncio.run(list_models_latency(tgt, app, calls, 1)),
                "c16": asyncio.run(list_models_latency(tgt, app, calls * 2, 16)),
            }
    finally:
        bare.terminate()
        try:
            bare.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bare.kill()
            bare.wait()
    return out


def measure_handle_hop(
    target: str, concurrencies: Sequence[int], calls: dict[int, int], max_tokens: int
) -> dict[str, Any]:
    """GenerateText direct vs through the hop deployment, at each concurrency."""
    out: dict[str, Any] = {}
    for c in concurrencies:
        out[str(c)] = {
            side: asyncio.run(generate_latency(target, app, calls[c], c, max_tokens))
            for side, app in (("direct", "text"), ("handle_hop", HOP_APP))
        }
    return out


def section(page: Page, result: PlatformResult) -> None:
    """The suite's platform section: both tables and their chart."""
    lm, hop = result.list_models, result.handle_hop
    page.add("", "## Platform overhead")
    page.error("platform.list_models", "platform.handle_hop")
    if lm:
        _list_models_table(page, lm)
    if hop:
        _hop_table(page, hop, result.max_tokens)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    if lm:
        labels, p50, p99 = [], [], []
        for c in ("c1", "c16"):
            for side in ("ray_ingress", "bare_grpcio"):
                x = lm[side][c]
                labels.append(f"{side.split('_')[0]}\nc={x['concurrency']}")
                p50.append(x.get("p50_ms") or 0)
                p99.append(x.get("p99_ms") or 0)
        _bars(axes[0], labels, p50, p99, "ListModels latency (ms)")
    if hop:
        labels, p50, p99 = [], [], []
        for c, sides in hop.items():
            for side in ("direct", "handle_hop"):
                labels.append(f"{'direct' if side == 'direct' else '+hop'}\nc={c}")
                p50.append(sides[side].get("p50_ms") or 0)
                p99.append(sides[side].get("p99_ms") or 0)
        _bars(axes[1], labels, p50, p99, "GenerateText latency (ms)")
    page.chart(fig, "platform", "platform overhead")


def _times(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    return f"{fmt(ratio(a.get(key), b.get(key)))}x"


def _list_models_table(page: Page, lm: dict[str, Any]) -> None:
    page.add(
        "",
        "`ModelService/ListModels` answered from memory by the same handler "
        "(shared ingress layer included): behind Ray Serve's ingress as "
        "`make serve` runs it (HAProxy → ingress replica) vs a bare "
        "`grpc.aio` server in its own process. Closed loop, one channel.",
        "",
        "| path | concurrency | p50 ms | p99 ms | calls/s |",
        "|---|---:|---:|---:|---:|",
    )
    for c in ("c1", "c16"):
        for side, label in (
            ("ray_ingress", "Ray ingress"),
            ("bare_grpcio", "bare grpcio"),
        ):
            x = lm[side][c]
            page.add(
                f"| {label} | {x['concurrency']} | {fmt(x.get('p50_ms'))} "
                f"| {fmt(x.get('p99_ms'))} | {fmt(x.get('calls_per_s'), 0)} |"
            )
        a, b = lm["ray_ingress"][c], lm["bare_grpcio"][c]
        page.add(
            f"| ratio Ray / bare | {a['concurrency']} | {_times(a, b, 'p50_ms')} "
            f"| {_times(a, b, 'p99_ms')} | {_times(a, b, 'calls_per_s')} |"
        )


def _hop_table(page: Page, hop: dict[int, Any], max_tokens: int) -> None:
    page.add(
        "",
        "One `DeploymentHandle` hop, as the studio makes it: unary "
        f"`GenerateText` ({max_tokens} tokens, greedy) sent to the "
        "text application directly vs to the `hop` application, whose ingress "
        "forwards it to `Text` with `handle.GenerateText.remote(request)`.",
        "",
        "| concurrency | path | p50 ms | p99 ms | max ms | calls/s | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    )
    for c, sides in hop.items():
        for side, label in (("direct", "direct"), ("handle_hop", "+1 handle")):
            x = sides[side]
            page.add(
                f"| {c} | {label} | {fmt(x.get('p50_ms'))} "
                f"| {fmt(x.get('p99_ms'))} | {fmt(x.get('max_ms'))} "
                f"| {fmt(x.get('calls_per_s'))} | {x.get('errors')} |"
            )
        a, b = sides["handle_hop"], sides["direct"]
        page.add(
            f"| {c} | ratio hop / direct | {_times(a, b, 'p50_ms')} "
            f"| {_times(a, b, 'p99_ms')} | {_times(a, b, 'max_ms')} "
            f"| {_times(a, b, 'calls_per_s')} | |"
        )


def _bars(
    ax: Any, labels: list[str], p50: list[float], p99: list[float], title: str
) -> None:
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
    ax.set_xticks(list(xs), labels)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
