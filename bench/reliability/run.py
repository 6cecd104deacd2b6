"""A run: the stack, every storm, then every fault, and the result files."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.procs import Server
from bench.lib.serve_config import app_config, base_config, only_apps
from bench.lib.stack import stack
from bench.reliability.faults import fault
from bench.reliability.overload import overload
from bench.reliability.report import markdown
from bench.reliability.results import ReliabilityResult, document
from bench.reliability.settings import FAMILIES, STORM_FAMILIES, TITLES


def admitted(config: dict[str, Any], app: str) -> int:
    """max_ongoing_requests + max_queued_requests of the app's deployment."""
    (deployment,) = app_config(config, app)["deployments"]
    return int(deployment["max_ongoing_requests"]) + int(
        deployment["max_queued_requests"]
    )


def measure(server: Server, result: ReliabilityResult) -> None:
    """Every storm, then every fault; a failed one is noted and the rest run."""

    def attempt(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as error:
            log(f"{what} failed: {error!r}")
            result.errors.append(f"{what}: {error!r}")
            return None

    for i in range(result.repeats):
        for family in STORM_FAMILIES:
            limit = result.admitted[family]
            run = attempt(
                f"overload {family} #{i + 1}",
                lambda f=family, n=limit: overload(server, f, n),
            )
            if run is not None:
                result.storms.append(run)
    for family, title in (("voice", TITLES["voice"]), ("text", TITLES["engine"])):
        for i in range(result.repeats):
            run = attempt(
                f"fault {family} #{i + 1}",
                lambda f=family, t=title: fault(server, f, t),
            )
            if run is not None:
                result.faults.append(run)


def run(repeats: int, quick: bool, out: Path) -> int:
    """Start the stack, measure, print the report and write its files."""
    config = only_apps(base_config(), set(FAMILIES))
    result = ReliabilityResult(
        repeats=repeats,
        admitted={f: admitted(config, f) for f in FAMILIES},
        startup_s=0.0,
        storms=[],
        faults=[],
        errors=[],
    )
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="maestro-reliability-"))
    try:
        with stack(config, workdir, "maestro", FAMILIES) as server:
            result.startup_s = time.monotonic() - began
            measure(server, result)
    except BaseException:
        log(f"stopped early; server logs kept in {workdir}")
        raise
    result.seconds = time.monotonic() - began
    stamp = utc_stamp()
    info = machine()
    page = markdown(result, stamp, info)
    print(page)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"reliability-{stamp}.md").write_text(page)
    (out / f"reliability-{stamp}.json").write_text(
        json.dumps(document(result, stamp, quick, info), indent=2, default=str) + "\n"
    )
    log(f"reliability: report in {out / f'reliability-{stamp}.md'}")
    log(f"server logs in {workdir}")
    return 1 if result.errors else 0
