"""Batching machinery shared by the engines (usable without Ray).

- `KeyedBatcher`: compatible requests (same key) become one call; one batch
  runs at a time (image: requests sharing size, steps, scheduler, ...).
- `InterleavedBatcher`: each request submits several items that run in order,
  at most one per batch, on a worker thread (voice: a text's segments).
"""

from deployments.engines.batching.config import BatchingConfig, BatchStats
from deployments.engines.batching.interleaved import InterleavedBatcher
from deployments.engines.batching.keyed import KeyedBatcher

__all__ = ["BatchStats", "BatchingConfig", "InterleavedBatcher", "KeyedBatcher"]
