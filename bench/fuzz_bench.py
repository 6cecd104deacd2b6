"""Hostile input at volume: `maestro.fuzz` against a stack, tallied per RPC x code.

    .venv/bin/python -m bench.fuzz_bench --requests 10000 [--target HOST:PORT]

Without `--target` it starts the stack of serve_config.yaml (`bench.lib.stack`,
free ports) and stops it afterwards. Prints the tally (RPC x status code), the
findings (answers a client cannot act on: INTERNAL, UNKNOWN, leaked Python
internals, ...) and whether every family still serves and answers a good
request; writes `bench/results/fuzz-<UTC timestamp>.md` and `.json`. Exit 1 on
any finding or an unhealthy family.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.lib.log import log, utc_stamp
from bench.lib.machine import machine
from bench.lib.serve_config import ROOT, base_config
from bench.lib.stack import stack
from maestro import fuzz

MAX_FINDINGS_SHOWN = 50


@contextmanager
def target(given: str | None) -> Iterator[str]:
    """`given`, or a fresh stack of serve_config.yaml for the run."""
    if given:
        yield given
        return
    workdir = Path(tempfile.mkdtemp(prefix="maestro-fuzz-bench-"))
    with stack(base_config(), workdir, "maestro") as server:
        yield server.target


def markdown(result: fuzz.FuzzResult, args: argparse.Namespace, stamp: str) -> str:
    rpcs = sorted({rpc for rpc, _ in result.tally})
    codes = sorted({code for _, code in result.tally}, key=fuzz.code_order)
    lines = [
        f"# Fuzz ({stamp})",
        "",
        f"{result.requests:,} requests (seed {args.seed}, deadline {args.timeout} s, "
        f"concurrency {args.concurrency}) in {result.seconds:.0f} s; "
        f"**{len(result.findings)} findings**.",
        "",
        "| rpc | " + " | ".join(codes) + " |",
        "| --- |" + " --- |" * len(codes),
    ]
    for rpc in rpcs:
        cells = (
            f"{result.tally[(rpc, c)]:,}" if result.tally[(rpc, c)] else ""
            for c in codes
        )
        lines.append(f"| {rpc} | " + " | ".join(cells) + " |")
    lines += ["", "| case | answers |", "| --- | --- |"]
    for kind in sorted({k for k, _ in result.kinds}):
        seen = ", ".join(
            f"{c} {n:,}" for (k, c), n in sorted(result.kinds.items()) if k == kind
        )
        lines.append(f"| {kind} | {seen} |")
    lines += ["", "| family | health | good request |", "| --- | --- | --- |"]
    for fam in result.families:
        answered = "answered" if fam.answered else f"**not answered**: {fam.detail}"
        lines.append(f"| {fam.family} | {fam.status} | {answered} |")
    lines += ["", "## One answer per RPC and code", ""]
    for (rpc, code), (details, request) in sorted(result.examples.items()):
        if code != "OK":
            lines.append(f"- `{rpc}` {code}: `{details!r}` for `{request[:160]}`")
    if result.findings:
        lines += ["", "## Findings", ""]
        for f in result.findings[:MAX_FINDINGS_SHOWN]:
            lines.append(
                f"- `{f.rpc}` **{f.code}** ({f.kind}): {f.why}; details "
                f"`{f.details!r}`; request `{f.request}`"
            )
        if len(result.findings) > MAX_FINDINGS_SHOWN:
            lines.append(
                f"- ... {len(result.findings) - MAX_FINDINGS_SHOWN} more in the JSON"
            )
    return "\n".join(lines) + "\n"


def document(
    result: fuzz.FuzzResult, args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "requests": result.requests,
        "seed": args.seed,
        "timeout_s": args.timeout,
        "concurrency": args.concurrency,
        "seconds": round(result.seconds, 1),
        "tally": [
            {"rpc": rpc, "code": code, "count": n}
            for (rpc, code), n in sorted(result.tally.items())
        ],
        "cases": [
            {"kind": kind, "code": code, "count": n}
            for (kind, code), n in sorted(result.kinds.items())
        ],
        "examples": [
            {"rpc": rpc, "code": code, "details": details, "request": request}
            for (rpc, code), (details, request) in sorted(result.examples.items())
        ],
        "findings": [dataclasses.asdict(f) for f in result.findings],
        "families": [dataclasses.asdict(f) for f in result.families],
        "machine": machine(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--target", default=None, help="HOST:PORT; default: start a stack")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=15.0, help="deadline per call, s")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    every = max(1, args.requests // 20)

    def progress(done: int, result: fuzz.FuzzResult) -> None:
        if done % every == 0:
            log(
                f"fuzz: {done:,}/{args.requests:,} sent, "
                f"{len(result.findings)} findings"
            )

    with target(args.target) as where:
        log(f"fuzz: {args.requests:,} requests against {where}")
        result = fuzz.fuzz(
            where,
            args.requests,
            args.seed,
            timeout_s=args.timeout,
            concurrency=args.concurrency,
            progress=progress,
        )
    print(fuzz.render(result, examples=True))
    stamp = utc_stamp()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"fuzz-{stamp}.md").write_text(markdown(result, args, stamp))
    (args.out / f"fuzz-{stamp}.json").write_text(
        json.dumps(document(result, args, stamp), indent=2)
    )
    log(f"fuzz: report in {args.out / f'fuzz-{stamp}.md'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
