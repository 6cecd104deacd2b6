"""Maestro's metrics: one table of definitions, recorded through Ray Serve.

Every metric is a `ray.serve.metrics` object, so it is served on Ray's
metrics export port beside Ray's own `ray_serve_*` series and carries the
`deployment`, `replica` and `application` tags. Ray 2.60 prefixes every
application metric with its namespace, so `maestro_requests` leaves the
port as `ray_maestro_requests_total`; the shipped Prometheus scrape config
(observability/prometheus/prometheus.yml) renames `ray_maestro_*` back to
`maestro_*`, the names dashboards and alerts use.

`METRICS` is the one list: dashboards and tests check their queries against
it. Recording goes through `recorder()`, which tests swap for an in-memory
one (`use_recorder`).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "METRICS",
    "InMemoryRecorder",
    "MetricDef",
    "exported_names",
    "inc",
    "observe",
    "recorder",
    "set_gauge",
    "use_recorder",
]

Kind = Literal["counter", "histogram", "gauge"]
# Seconds, from a unary health check (~1 ms) to a long composition (minutes).
LATENCY_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
SHORT_S = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
BATCH = [1, 2, 3, 4, 6, 8, 12, 16, 32]
RATIO = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]


@dataclass(frozen=True)
class MetricDef:
    name: str  # as defined; Prometheus adds _total / _bucket / _sum / _count
    kind: Kind
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        # Every RPC of every family (the shared ingress layer).
        MetricDef(
            "maestro_requests",
            "counter",
            "RPCs answered, by RPC and gRPC status code.",
            ("rpc", "code"),
        ),
        MetricDef(
            "maestro_request_latency_seconds",
            "histogram",
            "Time from request to last message, by RPC.",
            ("rpc",),
            tuple(LATENCY_S),
        ),
        # Text.
        MetricDef(
            "maestro_text_time_to_first_token_seconds",
            "histogram",
            "Time from request to the first generated token.",
            boundaries=tuple(SHORT_S),
        ),
        MetricDef(
            "maestro_text_inter_token_latency_seconds",
            "histogram",
            "Mean time between output tokens of a request.",
            boundaries=tuple(SHORT_S),
        ),
        MetricDef(
            "maestro_text_queue_time_seconds",
            "histogram",
            "Time a request waited in vLLM's queue before its first step.",
            boundaries=tuple(SHORT_S),
        ),
        MetricDef("maestro_text_prompt_tokens", "counter", "Prompt tokens processed."),
        MetricDef("maestro_text_output_tokens", "counter", "Tokens generated."),
        MetricDef(
            "maestro_text_running_requests",
            "gauge",
            "Requests vLLM holds (running or waiting) in the replica.",
        ),
        # Image.
        MetricDef(
            "maestro_image_denoising_steps",
            "counter",
            "Denoising steps run (one step of a batch counts once); rate() is "
            "steps per second.",
        ),
        MetricDef(
            "maestro_image_steps_per_second",
            "gauge",
            "Denoising steps per second of the last batch.",
        ),
        MetricDef(
            "maestro_image_batch_size",
            "histogram",
            "Images per pipeline call.",
            boundaries=tuple(BATCH),
        ),
        MetricDef("maestro_image_images", "counter", "Images generated."),
        # Voice.
        MetricDef(
            "maestro_voice_time_to_first_chunk_seconds",
            "histogram",
            "StreamSpeech: time from request to the first audio chunk.",
            boundaries=tuple(LATENCY_S),
        ),
        MetricDef(
            "maestro_voice_real_time_factor",
            "histogram",
            "Synthesis seconds per second of audio (below 1: faster than real time).",
            boundaries=tuple(RATIO),
        ),
        MetricDef("maestro_voice_audio_seconds", "counter", "Seconds of audio made."),
        # Studio.
        MetricDef(
            "maestro_studio_stage_latency_seconds",
            "histogram",
            "Compose stage wall time (plan, image, audio, total).",
            ("stage",),
            tuple(LATENCY_S),
        ),
        MetricDef(
            "maestro_studio_scene_failures",
            "counter",
            "Scenes whose image or audio failed, by stage.",
            ("stage",),
        ),
        # API keys and quotas (deployments.auth).
        MetricDef(
            "maestro_auth_failures",
            "counter",
            "Calls refused by auth, by reason (missing, unknown, scope) and the "
            "key's name where known.",
            ("reason", "key"),
        ),
        MetricDef(
            "maestro_quota_rejections",
            "counter",
            "Calls refused by a key's quota, by key name and quota.",
            ("key", "quota"),
        ),
        MetricDef(
            "maestro_quota_store_errors",
            "counter",
            "Quota store (Redis) calls that failed; the call was served unmetered.",
        ),
        # The response cache (deployments.cache).
        MetricDef(
            "maestro_cache_lookups",
            "counter",
            "Cache lookups of cacheable requests, by family and result (hit, miss).",
            ("family", "result"),
        ),
        MetricDef(
            "maestro_cache_evictions",
            "counter",
            "Entries evicted to stay within the cache's byte budget, by family.",
            ("family",),
        ),
        MetricDef(
            "maestro_cache_bytes",
            "gauge",
            "Bytes the family's cache entries hold (the replica's, or the shared "
            "Redis store's), as of the last store.",
            ("family",),
        ),
        MetricDef(
            "maestro_cache_errors",
            "counter",
            "Cache store (Redis) calls that failed; the request was served "
            "without the cache.",
            ("family",),
        ),
        MetricDef(
            "maestro_cache_too_large",
            "counter",
            "Results served but not stored: larger than max_entry_bytes.",
            ("family",),
        ),
    )
}


def exported_names(metric: MetricDef) -> tuple[str, ...]:
    """The series names Prometheus stores for `metric` (after the rename)."""
    if metric.kind == "counter":
        return (f"{metric.name}_total",)
    if metric.kind == "histogram":
        return tuple(f"{metric.name}_{s}" for s in ("bucket", "sum", "count"))
    return (metric.name,)


class Recorder(Protocol):
    def record(self, name: str, value: float, tags: dict[str, str]) -> None: ...


class RayRecorder:
    """Creates each `ray.serve.metrics` object on first use, in this process."""

    def __init__(self) -> None:
        self._metrics: dict[str, Any] = {}
        self._lock = threading.Lock()

    def record(self, name: str, value: float, tags: dict[str, str]) -> None:
        metric = self._metrics.get(name) or self._create(name)
        kind = METRICS[name].kind
        if kind == "counter":
            metric.inc(value, tags=tags or None)
        elif kind == "histogram":
            metric.observe(value, tags=tags or None)
        else:
            metric.set(value, tags=tags or None)

    def _create(self, name: str) -> Any:
        from ray.serve import metrics as serve_metrics

        d = METRICS[name]
        with self._lock:
            if name in self._metrics:
                return self._metrics[name]
            tag_keys = d.tags or None
            if d.kind == "counter":
                metric = serve_metrics.Counter(
                    d.name, description=d.description, tag_keys=tag_keys
                )
            elif d.kind == "histogram":
                metric = serve_metrics.Histogram(
                    d.name,
                    description=d.description,
                    boundaries=list(d.boundaries),
                    tag_keys=tag_keys,
                )
            else:
                metric = serve_metrics.Gauge(
                    d.name, description=d.description, tag_keys=tag_keys
                )
            self._metrics[name] = metric
            return metric


class InMemoryRecorder:
    """For tests: every recorded value, by metric name."""

    def __init__(self) -> None:
        self.values: dict[str, list[tuple[float, dict[str, str]]]] = defaultdict(list)

    def record(self, name: str, value: float, tags: dict[str, str]) -> None:
        assert name in METRICS, name
        assert set(tags) == set(METRICS[name].tags), (name, tags)
        self.values[name].append((value, dict(tags)))

    def total(self, name: str, **tags: str) -> float:
        values = self.values[name]
        return sum(v for v, t in values if tags.items() <= t.items())


_recorder: Recorder = RayRecorder()


def recorder() -> Recorder:
    return _recorder


def use_recorder(new: Recorder) -> Recorder:
    """Swap the recorder (tests); returns the previous one."""
    global _recorder
    old, _recorder = _recorder, new
    return old


def inc(name: str, value: float = 1.0, **tags: str) -> None:
    _recorder.record(name, value, tags)


def observe(name: str, value: float, **tags: str) -> None:
    _recorder.record(name, value, tags)


def set_gauge(name: str, value: float, **tags: str) -> None:
    _recorder.record(name, value, tags)
