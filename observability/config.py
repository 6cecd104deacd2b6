"""The `observability:` block of serve_config.yaml, and what Ray needs from it.

Ray Serve ignores unknown top-level keys of a serve config, so Maestro keeps
its tracing, metrics and dashboard settings beside Ray's own, in the same
file. `python -m deployments.launch` reads this block at start and derives
the environment Ray 2.60 reads its tracing settings from (the gRPC proxy
knows no other source) plus `ray.init` arguments; nothing is set twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from maestro import envs

__all__ = [
    "EXPORTER_IMPORT_PATH",
    "ObservabilityConfig",
    "TracingSettings",
    "load",
    "tracing_environment",
]

# The exporter function Ray imports in every replica and proxy.
EXPORTER_IMPORT_PATH = "observability.tracing:span_processors"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class TracingSettings(BaseModel):
    """Whether spans are exported, where to, and which share of traces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Export spans at all.")
    exporter: Literal["file", "otlp_grpc", "otlp_http"] = Field(
        "file",
        description="file: JSON lines (one span per line); otlp_grpc / "
        "otlp_http: an OpenTelemetry collector at `endpoint`.",
    )
    endpoint: str = Field(
        "",
        description="OTLP collector, e.g. http://127.0.0.1:4317 (gRPC) or "
        "http://127.0.0.1:4318/v1/traces (HTTP).",
    )
    file: str = Field(
        "logs/spans.jsonl",
        description="exporter `file`: where spans are appended; a relative "
        "path is anchored to the project root.",
    )
    max_file_bytes: int = Field(
        100 * 1024 * 1024,
        ge=4096,
        description="exporter `file`: past this size the file is rotated "
        "(spans.jsonl -> spans.jsonl.1 -> ...), by whichever process writes next.",
    )
    backup_files: int = Field(
        3, ge=0, le=100, description="Rotated files kept beside the live one."
    )
    sampling_ratio: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded; a client's traceparent "
        "decides for the calls it parents.",
    )

    @model_validator(mode="after")
    def _endpoint_for_otlp(self) -> TracingSettings:
        if self.enabled and self.exporter != "file" and not self.endpoint:
            raise ValueError(
                f"tracing.endpoint is required for exporter {self.exporter!r} "
                "(got an empty endpoint)"
            )
        return self

    def file_path(self) -> Path:
        path = Path(self.file)
        return path if path.is_absolute() else PROJECT_ROOT / path


class ObservabilityConfig(BaseModel):
    """Maestro's observability settings (top-level `observability:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracing: TracingSettings = Field(
        default_factory=TracingSettings,
        description="Where spans go and how many requests are traced.",
    )
    metrics_export_port: int = Field(
        8080,
        ge=1,
        le=65535,
        description="Ray's Prometheus endpoint (/metrics): ray_serve_* and "
        "maestro_* series of every process on the node.",
    )
    dashboard_port: int = Field(
        8265, ge=1, le=65535, description="Ray dashboard on 127.0.0.1."
    )


def load(serve_config: Mapping[str, Any] | str | Path) -> ObservabilityConfig:
    """The validated `observability:` block of a serve config (defaults if absent).

    Ray's own `tracing_config` key is refused: Ray 2.60's proxy never reads
    it, so tracing would half-work; `observability.tracing` is the one place.
    """
    raw = serve_config
    if not isinstance(raw, Mapping):
        raw = yaml.safe_load(Path(raw).read_text()) or {}
    if raw.get("tracing_config") is not None:
        raise ValueError(
            "tracing_config: set tracing under `observability.tracing` instead "
            "(deployments.launch derives Ray's settings from it)"
        )
    return ObservabilityConfig.model_validate(raw.get("observability") or {})


def tracing_environment(tracing: TracingSettings) -> dict[str, str]:
    """Environment for Ray's proxy and replicas (and the exporter they import)."""
    if not tracing.enabled:
        # Ray treats an empty exporter path as "tracing off".
        return {envs.RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH.name: ""}
    return {
        envs.RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH.name: EXPORTER_IMPORT_PATH,
        envs.RAY_SERVE_TRACING_SAMPLING_RATIO.name: repr(tracing.sampling_ratio),
        envs.MAESTRO_TRACING_EXPORTER.name: tracing.exporter,
        envs.MAESTRO_TRACING_ENDPOINT.name: tracing.endpoint,
        envs.MAESTRO_TRACING_FILE.name: str(tracing.file_path()),
        envs.MAESTRO_TRACING_FILE_MAX_BYTES.name: str(tracing.max_file_bytes),
        envs.MAESTRO_TRACING_FILE_BACKUPS.name: str(tracing.backup_files),
    }
