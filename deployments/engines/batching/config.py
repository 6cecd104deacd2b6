"""What both batchers share: their config model and the counters they keep."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchStats", "BatchingConfig"]


class BatchingConfig(BaseModel):
    """How concurrent requests' work is grouped into one model call.

    Families subclass it to change the defaults (image waits longer for
    batch-mates than voice, whose first chunk is latency-bound).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(
        8,
        ge=1,
        description="Most rows (images, speech segments) one model call runs. "
        "1 turns batching off (and makes outputs independent of load: kernels "
        "are not batch-invariant, so batch-mates move low-order bits).",
    )
    max_wait_ms: float = Field(
        50.0,
        ge=0,
        description="Longest a request waits for batch-mates before its batch "
        "runs; 0 runs at once.",
    )


@dataclass
class BatchStats:
    """Counters ListModels reports; updated on the event loop only."""

    batches: int = 0
    items: int = 0  # rows run (images, speech segments)
    # Items cancelled before their batch started: they never cost anything.
    cancelled: int = 0
    running: int = 0  # items in the batch being run now
    sizes: Counter[int] = field(default_factory=Counter)

    def record(self, size: int) -> None:
        """Count one finished batch of `size` rows."""
        self.batches += 1
        self.items += size
        self.sizes[size] += 1

    def summary(self) -> str:
        """`size:count` pairs, e.g. "1:3 8:12" (12 batches of 8 rows)."""
        return " ".join(f"{size}:{n}" for size, n in sorted(self.sizes.items()))
