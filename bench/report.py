"""The suite's Markdown report and PNG charts, from its JSON document.

Every figure sits beside its peer or limit from the same run, with the ratio;
targets are checked here (never by a timed test) and a missed one says so.
`python -m bench.report bench/results/<stamp>.json` rewrites the report of a
past run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.text_bench import SIDE_LABELS  # noqa: E402

GPU_REPORT = "bench/reports/gpu-20261126T1400Z-h200.md"
STACK_LIMIT_GIB = 8.0
TARGETS = {
    "text_vllm_tok_s": 0.9,
    "text_vllm_ttft": 1.2,
    "text_engine_tok_s": 0.8,
    "image_batched": 0.8,
    "voice_first_chunk": 0.35,
    "studio": 0.6,
}
SIDE_STYLE = {"engine": "tab:gray", "vllm": "tab:blue", "maestro": "tab:orange"}


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    return None if a is None or not b else a / b


def _verdict(value: float | None, bound: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= bound if higher_is_better else value <= bound
    return "met" if ok else "**MISSED**"


class Report:
    def __init__(self, doc: dict[str, Any], chart_dir: Path, rel: str) -> None:
        self.doc = doc
        self.r = doc["results"]
        self.chart_dir = chart_dir
        self.rel = rel
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def chart(self, fig: Any, name: str, caption: str) -> None:
        self.chart_dir.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(self.chart_dir / f"{name}.png", dpi=110)
        plt.close(fig)
        self.add("", f"![{caption}]({self.rel}/{name}.png)")

    def target(self, what: str, value: float | None, want: str, verdict: str) -> None:
        self.targets.append((what, _f(value), want, verdict))

    def error(self, *names: str) -> None:
        for name in names:
            if name in self.doc["errors"]:
                first = self.doc["errors"][name].splitlines()[0]
                self.add("", f"**{name} failed**: `{first[:400]}`")

    # --- sections ---------------------------------------------------------------

    def header(self) -> None:
        m = self.doc["machine"]
        gpu = m.get("gpu") or "none"
        self.add(
            f"# Maestro benchmark suite — {self.doc.get('timestamp', '')}",
            "",
            f"Machine: **{m['cpu_model']}**, {m['cpu_count']} cores, "
            f"{m['memory_gib']} GiB memory, GPU: {gpu}; {m['platform']}; "
            f"Python {m['python']}, vllm {m['vllm']}, ray {m['ray']}.",
            "",
            f"Mode: {'--quick' if self.doc['quick'] else 'full'}; sections: "
            f"{', '.join(self.doc['sections'])}; took "
            f"{_f(self.doc['durations_s'].get('total'), 0)} s. Every figure was "
            "measured in this run on this machine unless marked otherwise (the "
            "GPU section cites the device-machine report). Load generators run "
            "on the same cores as the servers; on a 2-core machine figures move "
            "by tens of percent between runs.",
        )
        obs = self.doc.get("observability") or {}
        tracing = obs.get("tracing") or {}
        if tracing:
            self.add(
                "",
                "Maestro stacks run serve_config.yaml as `make serve` does, "
                f"tracing {'on' if tracing.get('enabled') else 'off'}"
                + (
                    f" (exporter {tracing.get('exporter')}, sampling ratio "
                    f"{tracing.get('sampling_ratio')})"
                    if tracing.get("enabled")
                    else ""
                )
                + ".",
            )

    def text(self) -> None:
        peers = (self.r.get("text.peers") or {}).get("results", {})
        ours = (self.r.get("text.maestro") or {}).get("results", {})
        if not peers and not ours:
            self.error("text.peers", "text.maestro")
            return
        sides = {**peers, **ours}
        info = (self.r.get("text.peers") or self.r.get("text.maestro"))["info"]
        cs = [c for c in info["concurrency"]]
        self.add(
            "",
            "## Text: Maestro StreamText vs vLLM's OpenAI server vs the raw engine",
            "",
            f"Demo model (`models/demo/text`), same engine settings everywhere "
            f"(serve_config.yaml's text engine: float32, max_model_len 2048, "
            f"max_num_seqs 128, 1 GiB CPU KV cache). {info['prompt_tokens']} "
            f"prompt tokens, {info['max_tokens']} output tokens, greedy; prompts "
            f"per concurrency {info['prompts']}, {info['repeats']} repeat(s), "
            "median-throughput run shown. Raw engine = vLLM `AsyncLLM` inside "
            "the load generator's process (no server: the limit). The load "
            "generator is its own process for the servers.",
        )
        self.error("text.peers", "text.maestro")
        rows = (
            ("output tok/s", "output_tok_s", True),
            ("TTFT p50 (ms)", "ttft_p50_ms", False),
            ("TTFT p99 (ms)", "ttft_p99_ms", False),
            ("ITL p50 (ms)", "itl_p50_ms", False),
            ("ITL p99 (ms)", "itl_p99_ms", False),
            ("gap between messages p50 (ms)", "gap_p50_ms", None),
            ("errors", "errors", None),
        )
        names = [n for n in ("engine", "vllm", "maestro") if n in sides]
        for c in cs:
            here = {n: sides[n].get(c) or sides[n].get(str(c)) for n in names}
            here = {n: v for n, v in here.items() if v}
            if not here:
                continue
            head = [SIDE_LABELS[n] for n in here]
            ratios = [p for p in ("vllm", "engine") if p in here and "maestro" in here]
            head += [f"Maestro / {SIDE_LABELS[p]}" for p in ratios]
            self.add(
                "",
                f"### Concurrency {c}",
                "",
                "| metric | " + " | ".join(head) + " |",
                "|---|" + "---:|" * len(head),
            )
            for label, key, comparable in rows:
                cells = [_f(v.get(key)) for v in here.values()]
                for p in ratios:
                    r = _ratio(here["maestro"].get(key), here[p].get(key))
                    cells.append(_f(r) if comparable is not None else "")
                self.add(f"| {label} | " + " | ".join(cells) + " |")
            if c == 32 and "maestro" in here:
                m = here["maestro"]
                if "vllm" in here:
                    v = _ratio(m["output_tok_s"], here["vllm"]["output_tok_s"])
                    self.target(
                        "text c=32 tok/s vs vLLM server",
                        v,
                        ">= 0.9x",
                        _verdict(v, TARGETS["text_vllm_tok_s"], True),
                    )
                    v = _ratio(m["ttft_p50_ms"], here["vllm"]["ttft_p50_ms"])
                    self.target(
                        "text c=32 TTFT p50 vs vLLM server",
                        v,
                        "<= 1.2x",
                        _verdict(v, TARGETS["text_vllm_ttft"], False),
                    )
                if "engine" in here and "vllm" in here:
                    peer = _ratio(
                        here["vllm"]["output_tok_s"], here["engine"]["output_tok_s"]
                    )
                    self.notes.append(
                        "For scale: at concurrency 32 vLLM's own server reached "
                        f"{_f(peer)}x the raw engine's tok/s in this run (a server "
                        "pays for HTTP/gRPC, detokenized streaming and its share of "
                        "the same cores; the in-process engine pays none of it)."
                    )
                if "engine" in here:
                    v = _ratio(m["output_tok_s"], here["engine"]["output_tok_s"])
                    self.target(
                        "text c=32 tok/s vs raw engine",
                        v,
                        ">= 0.8x",
                        _verdict(v, TARGETS["text_engine_tok_s"], True),
                    )
        self._text_chart(sides, names, cs)

    def _text_chart(
        self, sides: dict[str, Any], names: list[str], cs: list[int]
    ) -> None:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4))
        panels = (
            ("output tok/s", ("output_tok_s",)),
            ("TTFT (ms): p50 solid, p99 dashed", ("ttft_p50_ms", "ttft_p99_ms")),
            ("ITL (ms): p50 solid, p99 dashed", ("itl_p50_ms", "itl_p99_ms")),
        )
        for ax, (title, keys) in zip(axes, panels, strict=True):
            for n in names:
                for key, style in zip(keys, ("-o", "--x"), strict=False):
                    xs, ys = [], []
                    for c in cs:
                        r = sides[n].get(c) or sides[n].get(str(c))
                        if r and r.get(key) is not None:
                            xs.append(c)
                            ys.append(r[key])
                    if xs:
                        ax.plot(
                            xs,
                            ys,
                            style,
                            color=SIDE_STYLE[n],
                            label=SIDE_LABELS[n] if style == "-o" else None,
                        )
            ax.set_xscale("log", base=2)
            ax.set_xticks(cs, [str(c) for c in cs])
            ax.set_xlabel("concurrent streams")
            ax.set_title(title)
            ax.grid(alpha=0.3)
        axes[0].legend()
        self.chart(fig, "text_scaling", "text throughput and latency vs concurrency")

    def platform(self) -> None:
        lm = self.r.get("platform.list_models")
        hop = self.r.get("platform.handle_hop")
        if not lm and not hop:
            self.error("platform.list_models", "platform.handle_hop")
            return
        self.add("", "## Platform overhead")
        self.error("platform.list_models", "platform.handle_hop")
        if lm:
            self.add(
                "",
                "`ModelService/ListModels` answered from memory by the same handler "
                "(shared ingress layer included): behind Ray Serve's ingress as "
                "`make serve` runs it (HAProxy → ingress replica) vs a bare "
                "`grpc.aio` server in its own process. Closed loop, one channel.",
                "",
                "| path | concurrency | p50 ms | p99 ms | calls/s |",
                "|---|---:|---:|---:|---:|",
            )
            for c in ("c1", "c16"):
                for side, label in (
                    ("ray_ingress", "Ray ingress"),
                    ("bare_grpcio", "bare grpcio"),
                ):
                    x = lm[side][c]
                    self.add(
                        f"| {label} | {x['concurrency']} | {_f(x.get('p50_ms'))} "
                        f"| {_f(x.get('p99_ms'))} | {_f(x.get('calls_per_s'), 0)} |"
                    )
                a, b = lm["ray_ingress"][c], lm["bare_grpcio"][c]
                self.add(
                    f"| ratio Ray / bare | {a['concurrency']} "
                    f"| {_f(_ratio(a.get('p50_ms'), b.get('p50_ms')))}x "
                    f"| {_f(_ratio(a.get('p99_ms'), b.get('p99_ms')))}x "
                    f"| {_f(_ratio(a.get('calls_per_s'), b.get('calls_per_s')))}x |"
                )
        if hop:
            self.add(
                "",
                "One `DeploymentHandle` hop, as the studio makes it: unary "
                f"`GenerateText` ({self._hop_tokens()} tokens, greedy) sent to the "
                "text application directly vs to the `hop` application, whose ingress "
                "forwards it to `Text` with `handle.GenerateText.remote(request)`.",
                "",
                "| concurrency | path | p50 ms | p99 ms | max ms | calls/s | errors |",
                "|---:|---|---:|---:|---:|---:|---:|",
            )
            for c, sides in hop.items():
                for side, label in (("direct", "direct"), ("handle_hop", "+1 handle")):
                    x = sides[side]
                    self.add(
                        f"| {c} | {label} | {_f(x.get('p50_ms'))} "
                        f"| {_f(x.get('p99_ms'))} | {_f(x.get('max_ms'))} "
                        f"| {_f(x.get('calls_per_s'))} "
                        f"| {x.get('errors')} |"
                    )
                a, b = sides["handle_hop"], sides["direct"]
                self.add(
                    f"| {c} | ratio hop / direct "
                    f"| {_f(_ratio(a.get('p50_ms'), b.get('p50_ms')))}x "
                    f"| {_f(_ratio(a.get('p99_ms'), b.get('p99_ms')))}x "
                    f"| {_f(_ratio(a.get('max_ms'), b.get('max_ms')))}x "
                    f"| {_f(_ratio(a.get('calls_per_s'), b.get('calls_per_s')))}x | |"
                )
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        if lm:
            labels, p50, p99 = [], [], []
            for c in ("c1", "c16"):
                for side in ("ray_ingress", "bare_grpcio"):
                    x = lm[side][c]
                    labels.append(f"{side.split('_')[0]}\nc={x['concurrency']}")
                    p50.append(x.get("p50_ms") or 0)
                    p99.append(x.get("p99_ms") or 0)
            self._bars(axes[0], labels, p50, p99, "ListModels latency (ms)")
        if hop:
            labels, p50, p99 = [], [], []
            for c, sides in hop.items():
                for side in ("direct", "handle_hop"):
                    labels.append(f"{'direct' if side == 'direct' else '+hop'}\nc={c}")
                    p50.append(sides[side].get("p50_ms") or 0)
                    p99.append(sides[side].get("p99_ms") or 0)
            self._bars(axes[1], labels, p50, p99, "GenerateText latency (ms)")
        self.chart(fig, "platform", "platform overhead")

    def _hop_tokens(self) -> int:
        from bench.suite import HOP_MAX_TOKENS

        return HOP_MAX_TOKENS

    @staticmethod
    def _bars(
        ax: Any, labels: list[str], p50: list[float], p99: list[float], title: str
    ) -> None:
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
        ax.set_xticks(list(xs), labels)
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")

    def image(self) -> None:
        raw, served = self.r.get("image.raw"), self.r.get("image.served")
        if not raw and not served:
            self.error("image.raw", "image.served")
            return
        self.add(
            "",
            "## Image: served vs the raw pipeline",
            "",
            "Demo SD pipeline, 64×64, the configured default steps, fp32. Raw = "
            "diffusers in the suite's process before any server ran: one call per "
            f"image (naive) and {raw['batch'] if raw else 8} prompts per call (the "
            "limit). Served = `GenerateImage` through the ingress from closed-loop "
            "clients, against the whole demo stack (vLLM idle beside it).",
        )
        self.error("image.raw", "image.served")
        naive = raw["naive_images_s"] if raw else None
        batched = raw["batched_images_s"] if raw else None
        self.add(
            "",
            "| what | images/s | / raw one-per-call | / raw batched | batches run |",
            "|---|---:|---:|---:|---|",
            f"| raw, one per call | {_f(naive)} | 1.00 "
            f"| {_f(_ratio(naive, batched))} | |",
            f"| raw, batched | {_f(batched)} | {_f(_ratio(batched, naive))} | 1.00 | |",
        )
        for c, x in (served or {}).items():
            rate = x["images_per_s"]
            self.add(
                f"| served, concurrency {c} | {_f(rate)} | {_f(_ratio(rate, naive))} "
                f"| {_f(_ratio(rate, batched))} | {x['batches']} |"
            )
        at8 = (served or {}).get(8) or (served or {}).get("8")
        if at8:
            v = _ratio(at8["images_per_s"], batched)
            self.target(
                "image c=8 vs raw batched",
                v,
                ">= 0.8x",
                _verdict(v, TARGETS["image_batched"], True),
            )
        fig, ax = plt.subplots(figsize=(6, 3.8))
        if served:
            cs = list(served)
            ax.bar([str(c) for c in cs], [served[c]["images_per_s"] for c in cs])
        if naive:
            ax.axhline(naive, color="tab:gray", ls="--", label="raw, one per call")
        if batched:
            ax.axhline(batched, color="tab:red", ls="--", label="raw, batched")
        ax.set_xlabel("served, concurrency")
        ax.set_ylabel("images/s")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        self.chart(fig, "image", "image throughput")

    def voice(self) -> None:
        raw, served = self.r.get("voice.raw"), self.r.get("voice.served")
        if not raw and not served:
            self.error("voice.raw", "voice.served")
            return
        self.add(
            "",
            "## Voice: first chunk vs whole, served vs raw",
            "",
            "Demo VITS, a 5-sentence text. Raw = `VoiceEngine` in the suite's "
            "process before any server; served = `Synthesize` / `StreamSpeech` "
            "through the ingress. Medians after warm-up. RTF = wall seconds per "
            "second of audio.",
        )
        self.error("voice.raw", "voice.served")
        for side in (raw, served):
            if side:
                side["first_over_whole"] = side["first_chunk_s"] / side["whole_s"]
                side["rtf"] = side["whole_s"] / side["audio_s"]
        rows = (
            ("whole text (s)", "whole_s"),
            ("first chunk (s)", "first_chunk_s"),
            ("whole stream (s)", "stream_total_s"),
            ("first chunk / whole", "first_over_whole"),
            ("real-time factor", "rtf"),
            ("audio (s)", "audio_s"),
        )
        self.add(
            "",
            "| metric | raw engine | served | served / raw |",
            "|---|---:|---:|---:|",
        )
        for label, key in rows:
            a = raw.get(key) if raw else None
            b = served.get(key) if served else None
            self.add(f"| {label} | {_f(a, 3)} | {_f(b, 3)} | {_f(_ratio(b, a))} |")
        if served:
            v = served["first_over_whole"]
            self.target(
                "voice served first chunk / whole",
                v,
                "<= 0.35x",
                _verdict(v, TARGETS["voice_first_chunk"], False),
            )
        fig, ax = plt.subplots(figsize=(6, 3.8))
        labels = ["first chunk", "whole"]
        for i, (name, side) in enumerate((("raw engine", raw), ("served", served))):
            if side:
                ax.bar(
                    [x + (i - 0.5) * 0.4 for x in range(2)],
                    [side["first_chunk_s"], side["whole_s"]],
                    0.4,
                    label=name,
                )
        ax.set_xticks(range(2), labels)
        ax.set_ylabel("seconds")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        self.chart(fig, "voice", "voice latency")

    def studio(self) -> None:
        doc = self.r.get("studio")
        if not doc:
            self.error("studio")
            return
        med, args = doc["median"], doc["args"]
        self.add(
            "",
            "## Studio: Compose vs the sequential sum of its stages",
            "",
            f"{args['scenes']} scenes, {args['size']}×{args['size']}, "
            f"{args['steps']} steps, {args['rounds']} round(s). Sequential = the "
            "same plan, images and narrations through the families' own RPCs, "
            "one after another.",
            "",
            "| round | Compose wall s | plan s | images s | narration s "
            "| sequential sum s | ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        )
        for i, r in enumerate(doc["rounds"]):
            st = r["sequential_stages_s"]
            self.add(
                f"| {i + 1} | {_f(r['compose_wall_s'])} | {_f(st['plan'])} "
                f"| {_f(st['image'])} | {_f(st['audio'])} "
                f"| {_f(r['sequential_sum_s'])} | {_f(r['ratio'])} |"
            )
        self.target(
            "studio Compose / sequential sum",
            med["ratio"],
            "<= 0.6x",
            _verdict(med["ratio"], TARGETS["studio"], False),
        )
        fig, ax = plt.subplots(figsize=(6, 3.8))
        st = doc["rounds"][-1]["sequential_stages_s"]
        bottom = 0.0
        for stage in ("plan", "image", "audio"):
            ax.bar(["sequential"], [st[stage]], bottom=bottom, label=stage)
            bottom += st[stage]
        ax.bar(["Compose"], [doc["rounds"][-1]["compose_wall_s"]], color="tab:orange")
        ax.set_ylabel("seconds")
        ax.legend()
        self.chart(fig, "studio", "studio compose vs sequential")

    def scaling(self) -> None:
        a = self.r.get("scaling.autoscale")
        self.add("", "## Scaling")
        self.add(
            "",
            "Text throughput and TTFT as concurrency doubles: the chart in the "
            "text section (`text_scaling.png`).",
        )
        if not a:
            self.error("scaling.autoscale")
            return
        load = a["load"]
        load.setdefault("requests", load.get("images"))
        load.setdefault("requests_per_s", load.get("images_per_s"))
        changed = ", ".join(f"`{k}: {v}`" for k, v in a["overridden_for_run"].items())
        self.add(
            "",
            f"Autoscaling of the `{a['application']}` deployment on a stack of its "
            "own. Settings from serve_config.yaml: "
            f"`{a['autoscaling_config_in_file']}`; "
            f"**overridden for this run**: {changed} (short delays so the run "
            f"takes a minute). Step load: {a['load_concurrency']} closed-loop "
            f"{'Synthesize' if a['application'] == 'voice' else 'GenerateImage'} "
            f"clients for {a['load_s']:.0f} s ({a['load']['requests']} requests, "
            f"{a['load']['requests_per_s']}/s, {a['load']['errors']} errors"
            + (
                f": {a['load']['error_codes']}, first `{a['load']['first_error']}`"
                if a["load"]["errors"]
                else ""
            )
            + "). Replicas counted as live replica processes once a second.",
            "",
            f"Peak replicas: {a['peak_replicas']}; scaled up: "
            f"{'yes' if a['scaled_up'] else '**no**'} "
            f"(after {_f(a['scale_up_after_s'], 1)} s of load); fell back to "
            f"min_replicas: {'yes' if a['fell_back'] else '**no**'} "
            f"({_f(a['scale_down_after_s'], 1)} s after the load ended).",
        )
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ts = [t for t, _ in a["replicas_timeline"]]
        ns = [n for _, n in a["replicas_timeline"]]
        ax.step(ts, ns, where="post", color="tab:orange")
        ev = a["events"]
        ax.axvspan(ev["load_start_s"], ev["load_end_s"], alpha=0.15, label="step load")
        ax.set_xlabel("seconds")
        ax.set_ylabel(f"{a['application']} replicas")
        ax.set_yticks(range(0, max(ns or [1]) + 2))
        ax.legend()
        ax.grid(alpha=0.3)
        self.chart(fig, "autoscale", "replica count over time")

    def memory(self) -> None:
        mem = self.r.get("memory")
        if not mem:
            return
        phases = mem["phases"]
        self.add(
            "",
            "## Memory",
            "",
            "RSS sampled once a second (psutil) and PSS at the end of each phase "
            "(reading PSS stalls the process read, so never during a "
            "measurement) over every process of the stack "
            f"(applications: {', '.join(mem['applications'])}): Ray's GCS, "
            "raylet, HAProxy, controller, each replica, vLLM's engine core. Whole "
            "stack = sum over processes: RSS sum (shared pages counted in each "
            "process: an upper bound) and PSS sum (shared pages split: the honest "
            f"total); the benchmark's own `hop` replica is listed but not summed. "
            f"Target: whole demo stack < {STACK_LIMIT_GIB:g} GiB.",
            "",
            "| phase | whole stack PSS GiB | whole stack RSS sum GiB "
            "| largest processes (peak RSS GiB) |",
            "|---|---:|---:|---|",
        )
        worst = 0.0
        for name, p in phases.items():
            if name == "start":
                continue
            top = ", ".join(
                f"{x['process'].split(' [')[0]} {x['peak_rss_gib']:.2f}"
                for x in p["processes"][:5]
            )
            worst = max(worst, p["peak_pss_sum_gib"])
            self.add(
                f"| {name} | {p['peak_pss_sum_gib']:.2f} | {p['peak_rss_sum_gib']:.2f} "
                f"| {top} |"
            )
        self.target(
            "whole demo stack memory (PSS, GiB)",
            worst,
            f"< {STACK_LIMIT_GIB:g}",
            "met" if worst < STACK_LIMIT_GIB else "**MISSED**",
        )
        self._processes(phases)
        kv = mem.get("kv_cache_tokens")
        text_info = (self.r.get("text.peers") or {}).get("info", {})
        self.add(
            "",
            f"KV cache vLLM took (its start-up log): Maestro's text replica "
            f"{_f(kv, 0)} tokens"
            + (
                f"; {text_info['kv_cache_tokens']}"
                if text_info.get("kv_cache_tokens")
                else ""
            )
            + " — `kv_cache_space_gib: 1` (VLLM_CPU_KVCACHE_SPACE) in "
            "serve_config.yaml.",
        )
        self.add(
            "",
            "GPU memory each family holds (GPU profile, measured on the device "
            "machine, NVIDIA H200, engines alone; see the GPU section): image "
            "(SDXL, fp16, 1024²) 11.26 GiB peak allocated; voice (MMS-TTS-size "
            "VITS) 1.07 GiB. Text (vLLM on a GPU, `gpu_memory_utilization` of "
            "its share) is **owed**: no CUDA vLLM run yet.",
        )
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
        ax.axhline(STACK_LIMIT_GIB, color="black", ls="--", label="target")
        ax.set_ylabel("GiB, peak")
        ax.set_title("whole stack memory per phase")
        ax.legend()
        self.chart(fig, "memory", "memory per phase")

    def _processes(self, phases: dict[str, Any]) -> None:
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
        self.add(
            "",
            "Peak RSS (GiB) of each replica process and vLLM's processes, during "
            "the text and the image runs:",
            "",
            "| process [pid] | " + " | ".join(f"{r} run" for r in runs) + " |",
            "|---|" + "---:|" * len(runs),
        )
        for k in sorted(mine, key=lambda k: -max(peaks[k].values())):
            cells = [f"{peaks[k][r]:.3f}" if r in peaks[k] else "-" for r in runs]
            self.add(f"| {k} | " + " | ".join(cells) + " |")
        sums = [sum(peaks[k].get(r, 0.0) for k in rest) for r in runs]
        self.add(
            f"| {len(rest)} other processes (Ray GCS, raylet, dashboard, "
            "controller, HAProxy, launcher), sum | "
            + " | ".join(f"{v:.3f}" for v in sums)
            + " |"
        )

    def gpu(self) -> None:
        self.add(
            "",
            "## GPU (from the device machine, not this run)",
            "",
            f"Cited from [`{GPU_REPORT}`](../reports/{Path(GPU_REPORT).name}) — "
            "**NVIDIA H200** "
            "(143,771 MiB, driver 580.159.04, torch 2.11 + CUDA 13, diffusers "
            "0.42.1), engines alone without Ray, random weights of the real "
            "architectures.",
            "",
            "| family | Maestro engine | raw library | engine / raw "
            "| GPU memory (peak allocated) |",
            "|---|---:|---:|---:|---:|",
            "| image, SDXL 1024², 30 steps, fp16 | 1.958 s | 1.858 s (diffusers) "
            "| 1.054x (target ≤ 1.05: missed by 0.004; PNG encode is 0.173 s of it, "
            "0.961x without) | 11.26 GiB |",
            "| voice, MMS-TTS-size VITS, whole 5-sentence text | 0.304 s | 0.217 s "
            "(transformers) | 1.40x | 1.07 GiB |",
            "| voice, first audio (raw: first sentence alone) | 0.067 s | 0.110 s "
            "| 0.61x | |",
            "| voice, RTF batched (engine: 8 concurrent; raw: 5 sentences padded) "
            "| 0.0025 | 0.0067 | 0.37x | |",
            "",
            "Voice engine first chunk / whole on the H200: 0.22x. **Owed**: vLLM's "
            "GPU memory and throughput figures (the text family on a GPU with CUDA "
            "vLLM), and the served (Ray) paths on a GPU.",
        )

    def summary(self) -> list[str]:
        lines = [
            "",
            "## Targets",
            "",
            "| check | value | target | verdict |",
            "|---|---:|---|---|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.targets]
        if self.notes:
            lines += ["", *self.notes]
        if self.doc["errors"]:
            lines += [
                "",
                f"Sections that failed: {', '.join(sorted(self.doc['errors']))}.",
            ]
        return lines

    def build(self) -> str:
        self.header()
        head = len(self.lines)
        parts = [self.text, self.platform, self.image, self.voice, self.studio]
        if "scaling" in self.doc["sections"]:
            parts.append(self.scaling)
        for part in [*parts, self.memory, self.gpu]:
            try:
                part()
            except Exception as exc:  # one bad section must not lose the rest
                self.add("", f"**report of {part.__name__} failed**: `{exc!r}`")
        durations = ", ".join(f"{k} {v}" for k, v in self.doc["durations_s"].items())
        self.add("", f"Section times (s): {durations}.")
        body = self.lines[head:]
        return "\n".join(self.lines[:head] + self.summary() + body) + "\n"


def write(doc: dict[str, Any], out: Path, stamp: str) -> Path:
    """`out/<stamp>.md` with charts in `out/<stamp>/`; returns the report's path."""
    report = Report(doc, out / stamp, stamp)
    path = out / f"{stamp}.md"
    path.write_text(report.build())
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0])
    doc = json.loads(path.read_text())
    print(write(doc, path.parent, path.stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
