"""Overload: 10 x what a deployment admits, offered at once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from bench.lib.log import log
from bench.lib.procs import Server
from bench.reliability.calls import code_of, replica_id
from bench.reliability.processes import PeakRss, find_process
from bench.reliability.results import StormRun
from bench.reliability.settings import IDLE_S, OVERLOAD_FACTOR, TITLES
from bench.reliability.stats import percentile


def _storm_call(client: Any, family: str, i: int) -> Awaitable[Any]:
    if family == "image":
        return client.generate_image(f"storm {i}", width=64, height=64, steps=1, seed=i)
    return client.synthesize(f"Storm call number {i}.", seed=i)


def _answered(family: str, reply: Any) -> bool:
    if family == "image":
        return bool(reply.images and reply.images[0].data)
    return bool(reply.audio)


async def _storm(server: Server, family: str, offered: int, limit: int) -> StormRun:
    from maestro import AsyncMaestroClient, MaestroClient

    with MaestroClient(server.target, timeout=30, retry=None) as sync:
        before = replica_id(sync, family)
    proc = find_process(server, TITLES[family])

    async with AsyncMaestroClient(server.target, timeout=120, retry=None) as client:

        async def one(i: int) -> tuple[str, float]:
            began = time.monotonic()
            try:
                reply = await _storm_call(client, family, i)
                code = "OK" if _answered(family, reply) else "EMPTY"
            except Exception as error:
                code = code_of(error)
            return code, time.monotonic() - began

        await one(offered)  # warm
        before_code, call_before = await one(offered + 1)
        with PeakRss(proc) as idle:
            await asyncio.sleep(IDLE_S)
        log(f"overload {family}: {offered} calls at once (admits {limit})")
        began = time.monotonic()
        with PeakRss(proc) as during:
            results = await asyncio.gather(*(one(i) for i in range(offered)))
        storm_s = time.monotonic() - began
        after_code, call_after = await one(offered + 2)
    with MaestroClient(server.target, timeout=30, retry=None) as sync:
        after = replica_id(sync, family)
    ok = [s for c, s in results if c == "OK"]
    refused = [s for c, s in results if c == "RESOURCE_EXHAUSTED"]
    run = StormRun(
        family=family,
        offered=offered,
        admitted=limit,
        codes=dict(Counter(c for c, _ in results).most_common()),
        ok_p50_s=percentile(ok, 50),
        ok_p99_s=percentile(ok, 99),
        refused_p50_s=percentile(refused, 50),
        refused_p99_s=percentile(refused, 99),
        storm_s=storm_s,
        replica_before=before,
        replica_after=after,
        rss_idle_mib=idle.peak_mib,
        rss_peak_mib=during.peak_mib,
        rss_samples=len(during.samples),
        call_before_s=call_before if before_code == "OK" else None,
        call_before_code=before_code,
        call_after_s=call_after if after_code == "OK" else None,
        call_after_code=after_code,
    )
    log(
        f"overload {family}: {run.codes} in {storm_s:.1f} s; replica "
        f"{'kept' if run.replica_kept else 'CHANGED'}"
    )
    return run


def overload(server: Server, family: str, limit: int) -> StormRun:
    return asyncio.run(_storm(server, family, OVERLOAD_FACTOR * limit, limit))
