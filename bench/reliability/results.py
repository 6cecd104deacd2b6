"""The measurements' results: dataclasses and the JSON document of a run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.reliability.settings import STORM_FAMILIES
from bench.reliability.stats import median


@dataclass
class StormRun:
    """One storm on one family."""

    family: str
    offered: int
    admitted: int
    codes: dict[str, int]
    ok_p50_s: float | None
    ok_p99_s: float | None
    refused_p50_s: float | None
    refused_p99_s: float | None
    storm_s: float
    replica_before: str | None
    replica_after: str | None
    rss_idle_mib: float | None
    rss_peak_mib: float | None
    rss_samples: int
    call_before_s: float | None
    call_before_code: str
    call_after_s: float | None
    call_after_code: str

    @property
    def ok(self) -> int:
        return self.codes.get("OK", 0)

    @property
    def refused(self) -> int:
        return self.codes.get("RESOURCE_EXHAUSTED", 0)

    @property
    def other(self) -> dict[str, int]:
        return {
            c: n for c, n in self.codes.items() if c not in ("OK", "RESOURCE_EXHAUSTED")
        }

    @property
    def replica_kept(self) -> bool:
        return self.replica_before is not None and (
            self.replica_before == self.replica_after
        )


@dataclass
class FaultRun:
    """One kill: what the clients saw until the family served again."""

    family: str
    killed: str  # the process title
    stream_code: str | None  # voice: what the live stream got
    stream_error_s: float | None  # kill -> the stream's error
    down_s: float | None  # kill -> first Health answer that is not SERVING
    not_serving_s: float | None  # kill -> first Health NOT_SERVING status
    serving_s: float | None  # kill -> Health SERVING again
    first_ok_s: float | None  # kill -> the first OK answer of a background call
    calls: dict[str, int]  # background calls started from kill to SERVING
    slowest_failure_s: float | None  # longest a failed call took to fail
    health: list[tuple[float, str]]  # Health answers as they changed
    replica_before: str | None
    replica_after: str | None
    baseline: dict[str, int] = field(default_factory=dict)  # calls before the kill


@dataclass
class ReliabilityResult:
    repeats: int
    admitted: dict[str, int]
    startup_s: float
    storms: list[StormRun]
    faults: list[FaultRun]
    errors: list[str]
    seconds: float = 0.0


def document(
    result: ReliabilityResult, stamp: str, quick: bool, info: dict[str, Any]
) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "quick": quick,
        "machine": info,
        **dataclasses.asdict(result),
        "medians": {
            "overload": {
                f: {
                    k: median([getattr(r, k) for r in result.storms if r.family == f])
                    for k in (
                        "ok",
                        "refused",
                        "ok_p50_s",
                        "ok_p99_s",
                        "refused_p50_s",
                        "refused_p99_s",
                        "storm_s",
                        "rss_idle_mib",
                        "rss_peak_mib",
                        "call_before_s",
                        "call_after_s",
                    )
                }
                for f in STORM_FAMILIES
            },
            "faults": {
                f: {
                    k: median([getattr(r, k) for r in result.faults if r.family == f])
                    for k in (
                        "stream_error_s",
                        "down_s",
                        "not_serving_s",
                        "serving_s",
                        "first_ok_s",
                        "slowest_failure_s",
                    )
                }
                for f in ("voice", "text")
            },
        },
    }
