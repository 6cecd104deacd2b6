"""The suite's memory section: what the stack's processes held in each phase."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.gpu_report import gpu_reference
from bench.lib.markdown import Page, fmt, pyplot
from bench.targets import TARGETS


@dataclass
class MemoryResult:
    """`MemorySampler.report()` of the shared stack, and vLLM's KV cache."""

    applications: list[str]
    phases: dict[str, Any]
    excluded_from_sums: list[str] = field(default_factory=list)
    kv_cache_tokens: int | None = None

    def worst_pss_gib(self) -> float:
        """The largest whole-stack PSS of any phase after start-up."""
        return max(
            (p["peak_pss_sum_gib"] for n, p in self.phases.items() if n != "start"),
            default=0.0,
        )


def section(page: Page, mem: MemoryResult, peers_kv_cache: str | None = None) -> None:
    """Phases table, the target, per-process peaks, KV cache, GPU memory, chart."""
    target = TARGETS["stack_memory_gib"]
    phases = mem.phases
    page.add(
        "",
        "## Memory",
        "",
        "RSS sampled once a second (psutil) and PSS at the end of each phase "
        "(reading PSS stalls the process read, so never during a "
        "measurement) over every process of the stack "
        f"(applications: {', '.join(mem.applications)}): Ray's GCS, "
        "raylet, HAProxy, controller, each replica, vLLM's engine core. Whole "
        "stack = sum over processes: RSS sum (shared pages counted in each "
        "process: an upper bound) and PSS sum (shared pages split: the honest "
        f"total); the benchmark's own `hop` replica is listed but not summed. "
        f"Target: whole demo stack {target.want} GiB.",
        "",
        "| phase | whole stack PSS GiB | whole stack RSS sum GiB "
        "| largest processes (peak RSS GiB) |",
        "|---|---:|---:|---|",
    )
    for name, p in phases.items():
        if name == "start":
            continue
        top = ", ".join(
            f"{x['process'].split(' [')[0]} {x['peak_rss_gib']:.2f}"
            for x in p["processes"][:5]
        )
        page.add(
            f"| {name} | {p['peak_pss_sum_gib']:.2f} | {p['peak_rss_sum_gib']:.2f} "
            f"| {top} |"
        )
    page.target(target, mem.worst_pss_gib())
    _processes(page, phases)
    page.add(
        "",
        f"KV cache vLLM took (its start-up log): Maestro's text replica "
        f"{fmt(mem.kv_cache_tokens, 0)} tokens"
        + (f"; {peers_kv_cache}" if peers_kv_cache else "")
        + " — `kv_cache_space_gib: 1` (VLLM_CPU_KVCACHE_SPACE) in "
        "serve_config.yaml.",
    )
    ref = gpu_reference()
    image, voice = ref["families"]["image"], ref["families"]["voice"]
    page.add(
        "",
        "GPU memory each family holds (GPU profile, measured on the device "
        f"machine, {ref['device']}, engines alone; see the GPU section): image "
        f"(SDXL, fp16, 1024²) {image['peak_gpu_gib']:.2f} GiB peak allocated; voice "
        f"(MMS-TTS-size VITS) {voice['peak_gpu_gib']:.2f} GiB. Text (vLLM on a GPU, "
        "`gpu_memory_utilization` of its share) is **owed**: no CUDA vLLM run yet.",
    )
    _chart(page, phases, target.threshold)


def _processes(page: Page, phases: dict[str, Any]) -> None:
    """Peak RSS of each replica and engine process during text and image."""
    runs = [n for n in ("text", "image") if n in phases]
    if not runs:
        return
    peaks: dict[str, dict[str, float]] = {}
    for run in runs:
        for x in phases[run]["processes"]:
            peaks.setdefault(x["process"], {})[run] = x["peak_rss_gib"]
    mine = [k for k in peaks if k.startswith(("ray::ServeReplica", "VLLM::"))]
    rest = [k for k in peaks if k not in mine]
    page.add(
        "",
        "Peak RSS (GiB) of each replica process and vLLM's processes, during "
        "the text and the image runs:",
        "",
        "| process [pid] | " + " | ".join(f"{r} run" for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    )
    for k in sorted(mine, key=lambda k: -max(peaks[k].values())):
        cells = [f"{peaks[k][r]:.3f}" if r in peaks[k] else "-" for r in runs]
        page.add(f"| {k} | " + " | ".join(cells) + " |")
    sums = [sum(peaks[k].get(r, 0.0) for k in rest) for r in runs]
    page.add(
        f"| {len(rest)} other processes (Ray GCS, raylet, dashboard, "
        "controller, HAProxy, launcher), sum | "
        + " | ".join(f"{v:.3f}" for v in sums)
        + " |"
    )


def _chart(page: Page, phases: dict[str, Any], limit_gib: float) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [n for n in phases if n != "start"]
    ax.bar(names, [phases[n]["peak_pss_sum_gib"] for n in names], label="PSS sum")
    ax.plot(
        names,
        [phases[n]["peak_rss_sum_gib"] for n in names],
        "o",
        color="tab:red",
        label="RSS sum",
    )
    ax.axhline(limit_gib, color="black", ls="--", label="target")
    ax.set_ylabel("GiB, peak")
    ax.set_title("whole stack memory per phase")
    ax.legend()
    page.chart(fig, "memory", "memory per phase")
