"""Reliability benchmark: overload and faults on one Maestro stack (CPU demo).

    .venv/bin/python -m bench.reliability_bench [--quick] [--repeats N] [--out DIR]

One stack (`bench.lib.stack`: serve_config.yaml's text, image and voice
applications as they are, free ports) and, on it, one after the other:

1. **Overload.** Per family (image, then voice): 10 x what its deployment
   admits (`max_ongoing_requests + max_queued_requests`, read from the
   config) offered at once through `AsyncMaestroClient` (`retry=None`; image
   64x64, 1 step, seeded; voice a short seeded `Synthesize`). Reported: the
   calls answered per code, p50/p99 latency of the served calls and of the
   refusals (RESOURCE_EXHAUSTED), the replica id (ListModels
   `stats["replica"]`) before and after (not restarted), the replica
   process's RSS idle before vs its peak during the storm (psutil, every
   0.1 s, in a thread), and one call's latency before vs right after.
2. **Faults** (SIGKILL, as an OOM killer would), each while a background
   loop starts a call every 0.2 s (open loop: one that hangs does not hold
   up the next; 5 s deadline, `retry=None`) and the main thread asks Health
   every 0.1 s:
   a. the voice replica (`ServeReplica:voice:Voice`) killed mid `StreamSpeech`:
      the code the stream got, kill -> Health SERVING again, calls meanwhile
      by code;
   b. vLLM's engine core (`VLLM::EngineCore`) under the text replica: kill ->
      Health NOT_SERVING, kill -> SERVING again (replica replaced), calls
      meanwhile by code.

Processes are found among the stack's own descendants (never another stack
on the machine). `--quick`: one repeat of everything; default three, the
report shows each run and the medians. Prints the Markdown report (stdout)
and writes `bench/results/reliability-<UTC stamp>.md` and `.json`. The stack
is stopped on the way out whatever happens (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.lib.serve_config import ROOT
from bench.lib.signals import unwind_on_signals
from bench.reliability.run import run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one repeat (default 3)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the stack is stopped either way.
    unwind_on_signals()
    repeats = args.repeats or (1 if args.quick else 3)
    return run(repeats, args.quick, args.out)


if __name__ == "__main__":
    sys.exit(main())
