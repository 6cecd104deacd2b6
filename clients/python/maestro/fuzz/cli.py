"""Hostile input: requests generated from every RPC's descriptor, answers judged.

The command line of `maestro.fuzz`; its first line above is `--help`'s description:

    python -m maestro.fuzz --target 127.0.0.1:9000 --requests 500 --seed 7
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from maestro.fuzz.report import render
from maestro.fuzz.runner import fuzz


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m maestro.fuzz", description=__doc__.splitlines()[0]
    )
    p.add_argument("--target", default="127.0.0.1:9000", help="HOST:PORT")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=15.0, help="deadline per call, s")
    p.add_argument("--max-seconds", type=float, default=None, help="stop sending after")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--no-check", action="store_true", help="skip the family checks")
    p.add_argument(
        "--disruptive",
        action="store_true",
        help="Load/Unload Model/Adapter on real models",
    )
    p.add_argument("--examples", action="store_true", help="one answer per rpc/code")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = fuzz(
        args.target,
        args.requests,
        args.seed,
        timeout_s=args.timeout,
        max_seconds=args.max_seconds,
        concurrency=args.concurrency,
        check=not args.no_check,
        disruptive=args.disruptive,
    )
    print(render(result, examples=args.examples))
    return 0 if not result.findings and (args.no_check or result.healthy) else 1
