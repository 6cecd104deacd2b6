"""Every environment variable Maestro reads or sets, in one table.

Like vLLM's `envs.py`: each variable is declared once, with its default and
what it does; code reads `envs.MAESTRO_TARGET.get()` instead of spelling the
name. Three kinds live here:

- `MAESTRO_*`: Maestro's own (clients, the launcher, observability);
- `RAY_SERVE_*` / `RAY_*`: switches Ray Serve reads only from the environment
  of the processes it starts; `deployments.launch` derives them;
- `VLLM_*`: vLLM settings it reads only from the environment; the text engine
  sets them from its config (`args.engine`) before vLLM starts.

This module lives in the client package because every part of Maestro
(clients, CLI, deployments, observability, benchmarks) already depends on it
and it imports nothing but the standard library. `python -m maestro.envs`
prints the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ENV_VARS", "EnvVar", "set_for_children"]

Owner = Literal["maestro", "ray", "vllm", "other"]


@dataclass(frozen=True)
class EnvVar:
    """One variable: its name, default (None: unset), parser and meaning."""

    name: str
    default: str | None
    doc: str
    owner: Owner = "maestro"
    parse: Callable[[str], Any] = str

    def raw(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The value as set (or the default), unparsed; "" counts as unset."""
        value = (os.environ if environ is None else environ).get(self.name)
        return value if value else self.default

    def get(self, environ: Mapping[str, str] | None = None) -> Any:
        """The parsed value, or the parsed default (None if neither)."""
        value = self.raw(environ)
        return None if value is None else self.parse(value)

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name))

    def __str__(self) -> str:
        return self.name


ENV_VARS: dict[str, EnvVar] = {}


def _var(
    name: str,
    default: str | None,
    doc: str,
    owner: Owner = "maestro",
    parse: Callable[[str], Any] = str,
) -> EnvVar:
    var = EnvVar(name, default, doc, owner, parse)
    ENV_VARS[name] = var
    return var


def set_for_children(var: EnvVar, value: str) -> None:
    """Set `var` in this process, for the processes it starts next.

    The one sanctioned way for Maestro code to change the environment: the
    variable must be declared in this table.
    """
    if ENV_VARS.get(var.name) is not var:
        raise KeyError(f"{var.name} is not declared in maestro.envs")
    os.environ[var.name] = value


# --- Clients and CLI -------------------------------------------------------
MAESTRO_TARGET = _var(
    "MAESTRO_TARGET", "127.0.0.1:9000", "host:port the CLI calls (--target wins)."
)

MAESTRO_API_KEY = _var(
    "MAESTRO_API_KEY",
    None,
    "The API key clients send (authorization: Bearer); unset: the key file. "
    "The launcher registers it as the local key.",
)
MAESTRO_API_KEY_FILE = _var(
    "MAESTRO_API_KEY_FILE",
    "~/.maestro/api_key",
    "Where the local key lives when MAESTRO_API_KEY is unset; `make serve` "
    "creates it (mode 0600) on first start.",
)

# --- Launcher (deployments.launch) ----------------------------------------
MAESTRO_AUTH = _var(
    "MAESTRO_AUTH",
    None,
    "Set by the launcher from the auth: block: every key's name, SHA-256, "
    "scopes and quotas (JSON; never a plain key). Unset: auth off.",
)
MAESTRO_METRICS_EXPORT_PORT = _var(
    "MAESTRO_METRICS_EXPORT_PORT",
    None,
    "Ray's metrics export port; overrides observability.metrics_export_port "
    "(a second stack beside the first).",
    parse=int,
)
MAESTRO_DASHBOARD_PORT = _var(
    "MAESTRO_DASHBOARD_PORT",
    None,
    "Ray dashboard port; overrides observability.dashboard_port.",
    parse=int,
)

# --- Tracing (derived from observability.tracing by the launcher) ---------
MAESTRO_TRACING_EXPORTER = _var(
    "MAESTRO_TRACING_EXPORTER",
    "file",
    "Where replicas and the proxy send spans: file, otlp_grpc or otlp_http.",
)
MAESTRO_TRACING_ENDPOINT = _var(
    "MAESTRO_TRACING_ENDPOINT", "", "OTLP endpoint for the otlp_* exporters."
)
MAESTRO_TRACING_FILE = _var(
    "MAESTRO_TRACING_FILE",
    "logs/spans.jsonl",
    "JSON-lines span file of the file exporter.",
)
MAESTRO_TRACING_FILE_MAX_BYTES = _var(
    "MAESTRO_TRACING_FILE_MAX_BYTES",
    str(100 * 1024 * 1024),
    "Size past which the span file is rotated.",
    parse=int,
)
MAESTRO_TRACING_FILE_BACKUPS = _var(
    "MAESTRO_TRACING_FILE_BACKUPS",
    "3",
    "Rotated span files kept (spans.jsonl.1 ... .N).",
    parse=int,
)
RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH = _var(
    "RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH",
    None,
    "Ray Serve's span-processor hook; the launcher points it at "
    "observability.tracing:span_processors (empty: tracing off).",
    owner="ray",
)
RAY_SERVE_TRACING_SAMPLING_RATIO = _var(
    "RAY_SERVE_TRACING_SAMPLING_RATIO",
    None,
    "Share of requests traced; from observability.tracing.sampling_ratio.",
    owner="ray",
    parse=float,
)

# --- Ray Serve switches the launcher sets (a caller's value wins) ---------
RAY_SERVE_ENABLE_HA_PROXY = _var(
    "RAY_SERVE_ENABLE_HA_PROXY",
    "1",
    "HAProxy on the gRPC port routes each call straight to the ingress "
    "replica of its application (~0.05 ms of CPU per streamed message instead "
    "of ~1 ms through Ray's Python proxy). 0: Ray's Python proxy.",
    owner="ray",
)
RAY_SERVE_GRPC_MAX_MESSAGE_SIZE = _var(
    "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE",
    str(64 * 1024 * 1024),
    "Largest gRPC message (bytes) the ingress receives or sends. The launcher "
    "sets 64 MiB (Ray's own default is 2 GiB - 1): bigger requests answer "
    "RESOURCE_EXHAUSTED before any Maestro code reads them; responses are "
    "bounded below it (image max_total_pixels).",
    owner="ray",
    parse=int,
)
RAY_SERVE_HAPROXY_BALANCE_ALGORITHM = _var(
    "RAY_SERVE_HAPROXY_BALANCE_ALGORITHM",
    "hdr(multiplexed_model_id)",
    "How HAProxy picks a replica (its `balance` line, all backends). Hashing "
    "the `multiplexed_model_id` header clients set from a request's `model` "
    "sends every call for a model to the replica that loaded it; calls "
    "without one (the default model) go round robin. Ray's default: leastconn "
    "(no model affinity). See deployments/routing.py.",
    owner="ray",
)
RAY_ADDRESS = _var(
    "RAY_ADDRESS",
    None,
    "A Ray cluster to join; side-by-side stacks (tests, benches) drop it so "
    "they always start a fresh local Ray.",
    owner="ray",
)
# Set only for a second stack beside the first (side_by_side_environment).
RAY_SERVE_HAPROXY_METRICS_PORT = _var(
    "RAY_SERVE_HAPROXY_METRICS_PORT",
    None,
    "HAProxy's metrics listener (Ray's default 9101).",
    owner="ray",
    parse=int,
)
RAY_SERVE_HAPROXY_STATS_PORT = _var(
    "RAY_SERVE_HAPROXY_STATS_PORT",
    None,
    "HAProxy's stats listener (Ray's default 8404).",
    owner="ray",
    parse=int,
)
RAY_SERVE_DIRECT_INGRESS_PORT_RANGES = {
    (kind, bound): _var(
        f"RAY_SERVE_DIRECT_INGRESS_{bound}_{kind}_PORT",
        None,
        f"{bound.lower()}imum port of the {kind} ports ingress replicas listen "
        "on; side-by-side stacks take a random slice so two stacks never meet.",
        owner="ray",
        parse=int,
    )
    for kind in ("HTTP", "GRPC")
    for bound in ("MIN", "MAX")
}
RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S = _var(
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
    None,
    "Seconds a stopping ingress replica drains; side-by-side stacks use 2 "
    "instead of the 30 a production rollout wants.",
    owner="ray",
    parse=float,
)

# --- vLLM (set by the text engine from its config) ------------------------
VLLM_CPU_KVCACHE_SPACE = _var(
    "VLLM_CPU_KVCACHE_SPACE",
    None,
    "CPU only: GiB of KV cache. Set from text args.engine.kv_cache_space_gib "
    "before vLLM starts (vLLM reads it only from the environment; its engine "
    "core inherits it).",
    owner="vllm",
    parse=int,
)

# --- Benchmarks -------------------------------------------------------------
MPLBACKEND = _var(
    "MPLBACKEND",
    "Agg",
    "matplotlib backend for the benchmark charts (no screen needed).",
    owner="other",
)


def table() -> str:
    """The table as Markdown (README's environment section is built from it)."""
    rows = ["| variable | default | read by | meaning |", "| --- | --- | --- | --- |"]
    for var in ENV_VARS.values():
        default = "" if var.default is None else f"`{var.default}`"
        rows.append(f"| `{var.name}` | {default} | {var.owner} | {var.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
