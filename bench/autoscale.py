"""Autoscaling: a step load raises a family's replica count; it falls back after.

A stack holding only the voice (default) or image application runs with that
deployment's `autoscaling_config` from serve_config.yaml, with these
overridden for the run (and said so in the report):

- the delays and windows, shortened so a run takes a minute, not ten
  (`SHORT_DELAYS`);
- `max_replicas`, raised to 2 when the file allows only 1 (nothing could scale).

The load is `target_ongoing_requests x 2` closed-loop clients (`Synthesize`
or `GenerateImage`), so the policy asks for two replicas, held for
`--load-s` seconds between idle stretches. Replica processes are counted once
a second (Ray titles each replica's process `ray::ServeReplica:<app>:<Name>`),
so the count includes a replica that is still loading its model.

Run alone: ``python -m bench.autoscale [--app voice|image] [--load-s 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.log import log
from bench.lib.markdown import Page, fmt, pyplot
from bench.lib.memory import MemorySampler, replica_counts
from bench.lib.results import from_dict, to_dict
from bench.lib.serve_config import app_config, base_config
from bench.lib.stack import stack

APPS = {
    "voice": "ray::ServeReplica:voice:Voice",
    "image": "ray::ServeReplica:image:Image",
}
VOICE_TEXT = "The keeper lit the lamp. The comet answered with a wink of light."
SHORT_DELAYS = {
    "upscale_delay_s": 2.0,
    "downscale_delay_s": 8.0,
    "look_back_period_s": 3.0,
    "metrics_interval_s": 1.0,
}


@dataclass
class AutoscaleResult:
    """The settings used, the load, and the replica count over time."""

    application: str
    autoscaling_config_in_file: dict[str, Any]
    overridden_for_run: dict[str, Any]
    autoscaling_config_used: dict[str, Any]
    load_concurrency: int
    load_s: float
    load: dict[str, Any]
    events: dict[str, float]
    replicas_timeline: list[tuple[float, int]]
    peak_replicas: int
    scaled_up: bool
    fell_back: bool
    scale_up_after_s: float | None
    scale_down_after_s: float | None

    @classmethod
    def from_doc(cls, data: dict[str, Any]) -> AutoscaleResult:
        load = dict(data["load"])  # older runs of --app image counted images
        load.setdefault("requests", load.get("images"))
        load.setdefault("requests_per_s", load.get("images_per_s"))
        return from_dict(cls, {**data, "load": load})


def autoscaling_setup(
    name: str,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(serve config for the run, the file's autoscaling_config, what changed)."""
    config = base_config()
    app = app_config(config, name)
    (deployment,) = app["deployments"]
    original = dict(deployment.get("autoscaling_config") or {})
    changed: dict[str, Any] = dict(SHORT_DELAYS)
    if int(original.get("max_replicas", 1)) <= 1:
        changed["max_replicas"] = 2
    if "num_replicas" in deployment:
        deployment.pop("num_replicas")
    deployment["autoscaling_config"] = {**original, **changed}
    config["applications"] = [app]
    return config, original, changed


async def step_load(
    target: str, app: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` clients calling the family back to back for `seconds`."""
    from maestro import AsyncMaestroClient

    done = errors = 0
    codes: dict[str, int] = {}
    first_error = ""
    stop_at = time.monotonic() + seconds
    async with AsyncMaestroClient(target, timeout=120) as client:

        async def worker(w: int) -> None:
            nonlocal done, errors, first_error
            i = 0
            while time.monotonic() < stop_at:
                try:
                    if app == "voice":
                        await client.synthesize(VOICE_TEXT, seed=i)
                    else:
                        await client.generate_image(f"load {w} {i}", seed=i)
                    done += 1
                except Exception as exc:
                    errors += 1
                    code = getattr(getattr(exc, "code", None), "name", None)
                    code = code or type(exc).__name__
                    codes[code] = codes.get(code, 0) + 1
                    first_error = first_error or f"{code}: {exc}"[:300]
                    await asyncio.sleep(0.2)
                i += 1

        start = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.monotonic() - start
    return {
        "requests": done,
        "errors": errors,
        "error_codes": codes,
        "first_error": first_error,
        "requests_per_s": round(done / wall, 2),
    }


def measure(
    workdir: Path, load_s: float = 30.0, settle_s: float = 60.0, app: str = "voice"
) -> AutoscaleResult:
    """Idle, step load, idle until the count is back at min_replicas (or timeout)."""
    prefix = APPS[app]
    config, original, changed = autoscaling_setup(app)
    settings = config["applications"][0]["deployments"][0]["autoscaling_config"]
    minimum = int(settings.get("min_replicas", 1))
    target = float(settings.get("target_ongoing_requests", 2))
    concurrency = max(2, int(round(target * 2)))
    with stack(config, workdir, name="maestro-autoscale", families=[app]) as server:
        with MemorySampler(server.proc.pid, interval_s=1.0) as sampler:
            events: dict[str, float] = {}
            time.sleep(3)
            events["load_start_s"] = time.monotonic() - sampler.t0
            log(f"autoscale: step load, {concurrency} clients for {load_s:.0f} s")
            load = asyncio.run(step_load(server.target, app, concurrency, load_s))
            events["load_end_s"] = time.monotonic() - sampler.t0
            log(f"autoscale: load done ({load}); waiting for the fall back")
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline:
                time.sleep(1)
                counts = replica_counts(sampler.timeline, prefix)
                if counts and counts[-1][1] <= minimum:
                    events["back_at_min_s"] = counts[-1][0]
                    break
            time.sleep(2)
        counts = replica_counts(sampler.timeline, prefix)
    peak = max((n for _, n in counts), default=0)
    during = [n for t, n in counts if t >= events["load_start_s"]]
    after = [n for t, n in counts if t >= events["load_end_s"]]
    first_up = next(
        (t for t, n in counts if t >= events["load_start_s"] and n > minimum), None
    )
    result = AutoscaleResult(
        application=app,
        autoscaling_config_in_file=original,
        overridden_for_run=changed,
        autoscaling_config_used=settings,
        load_concurrency=concurrency,
        load_s=load_s,
        load=load,
        events=events,
        replicas_timeline=[(round(t, 2), n) for t, n in counts],
        peak_replicas=peak,
        scaled_up=bool(during) and max(during) > minimum,
        fell_back=bool(after) and after[-1] <= minimum,
        scale_up_after_s=None
        if first_up is None
        else round(first_up - events["load_start_s"], 1),
        scale_down_after_s=None
        if "back_at_min_s" not in events
        else round(events["back_at_min_s"] - events["load_end_s"], 1),
    )
    log(
        f"autoscale: peak {peak} replicas, up after {result.scale_up_after_s} s, "
        f"back at {minimum} after {result.scale_down_after_s} s"
    )
    return result


def section(page: Page, a: AutoscaleResult | None) -> None:
    """The suite's scaling section: settings, load, the verdicts, the chart."""
    page.add("", "## Scaling")
    page.add(
        "",
        "Text throughput and TTFT as concurrency doubles: the chart in the "
        "text section (`text_scaling.png`).",
    )
    if a is None:
        page.error("scaling.autoscale")
        return
    load = a.load
    changed = ", ".join(f"`{k}: {v}`" for k, v in a.overridden_for_run.items())
    page.add(
        "",
        f"Autoscaling of the `{a.application}` deployment on a stack of its "
        "own. Settings from serve_config.yaml: "
        f"`{a.autoscaling_config_in_file}`; "
        f"**overridden for this run**: {changed} (short delays so the run "
        f"takes a minute). Step load: {a.load_concurrency} closed-loop "
        f"{'Synthesize' if a.application == 'voice' else 'GenerateImage'} "
        f"clients for {a.load_s:.0f} s ({load['requests']} requests, "
        f"{load['requests_per_s']}/s, {load['errors']} errors"
        + (
            f": {load['error_codes']}, first `{load['first_error']}`"
            if load["errors"]
            else ""
        )
        + "). Replicas counted as live replica processes once a second.",
        "",
        f"Peak replicas: {a.peak_replicas}; scaled up: "
        f"{'yes' if a.scaled_up else '**no**'} "
        f"(after {fmt(a.scale_up_after_s, 1)} s of load); fell back to "
        f"min_replicas: {'yes' if a.fell_back else '**no**'} "
        f"({fmt(a.scale_down_after_s, 1)} s after the load ended).",
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ts = [t for t, _ in a.replicas_timeline]
    ns = [n for _, n in a.replicas_timeline]
    ax.step(ts, ns, where="post", color="tab:orange")
    ev = a.events
    ax.axvspan(ev["load_start_s"], ev["load_end_s"], alpha=0.15, label="step load")
    ax.set_xlabel("seconds")
    ax.set_ylabel(f"{a.application} replicas")
    ax.set_yticks(range(0, max(ns or [1]) + 2))
    ax.legend()
    ax.grid(alpha=0.3)
    page.chart(fig, "autoscale", "replica count over time")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load-s", type=float, default=30.0)
    p.add_argument("--settle-s", type=float, default=60.0)
    p.add_argument("--app", choices=sorted(APPS), default="voice")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autoscale-bench-") as tmp:
        result = measure(Path(tmp), args.load_s, args.settle_s, args.app)
    print(json.dumps(to_dict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
