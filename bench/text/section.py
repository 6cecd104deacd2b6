"""The text result as Markdown: the script's report and the suite's section."""

from __future__ import annotations

from typing import Any

from bench.lib.markdown import Page, fmt, pyplot
from bench.text.prompts import OUTPUT_TOKENS, PROMPT_TOKENS
from bench.text.result import (
    SIDE_LABELS,
    TARGET_CONCURRENCY,
    TextResult,
    checks,
    side_ratio,
)

# The script's table: (label, loadgen key); None: requests ok / sent.
ROWS = (
    ("output tok/s", "output_tok_s"),
    ("requests/s", "requests_s"),
    ("TTFT p50 (ms)", "ttft_p50_ms"),
    ("TTFT p99 (ms)", "ttft_p99_ms"),
    ("first non-empty text p50 (ms)", "first_text_p50_ms"),
    ("streams without any text", "streams_without_text"),
    ("gap between messages p50 (ms)", "gap_p50_ms"),
    ("gap between messages p99 (ms)", "gap_p99_ms"),
    ("messages per stream (mean)", "messages_per_stream"),
    ("ITL p50 (ms)", "itl_p50_ms"),
    ("ITL p99 (ms)", "itl_p99_ms"),
    ("completion tokens (total)", "completion_tokens"),
    ("requests ok / sent", None),
    ("wall time (s)", "wall_s"),
    ("load generator CPU (s)", "loadgen_cpu_s"),
)
# Counts where a ratio means nothing.
NO_RATIO = {"streams_without_text", "messages_per_stream", "completion_tokens"}
# The suite's table: (label, key, whether maestro / peer means anything).
SUITE_ROWS = (
    ("output tok/s", "output_tok_s", True),
    ("TTFT p50 (ms)", "ttft_p50_ms", True),
    ("TTFT p99 (ms)", "ttft_p99_ms", True),
    ("ITL p50 (ms)", "itl_p50_ms", True),
    ("ITL p99 (ms)", "itl_p99_ms", True),
    ("gap between messages p50 (ms)", "gap_p50_ms", False),
    ("errors", "errors", False),
)
SIDE_STYLE = {"engine": "tab:gray", "vllm": "tab:blue", "maestro": "tab:orange"}


def table(concurrency: int, sides: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one concurrency: every side, maestro/vllm, maestro/engine."""
    names = list(sides)
    maestro = sides.get("maestro")
    peers = [(n, sides[n]) for n in ("vllm", "engine") if n in sides]
    head = [SIDE_LABELS[n] for n in names] + [f"maestro/{n}" for n, _ in peers]
    lines = [
        f"### Concurrency {concurrency}",
        "",
        f"| metric | {' | '.join(head)} |",
        "|---|" + "---:|" * len(head),
    ]
    for label, key in ROWS:
        if key is None:
            cells = [f"{sides[n]['ok']} / {sides[n]['requests']}" for n in names]
            cells += [""] * len(peers)
        else:
            cells = [fmt(sides[n].get(key)) for n in names]
            for _, peer in peers:
                r = (
                    None
                    if key in NO_RATIO or maestro is None
                    else side_ratio(maestro, peer, key)
                )
                cells.append(fmt(r) if r is not None else "")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    runs = [
        ", ".join(f"{x:,.0f}" for x in sides[n].get("repeats_output_tok_s", []))
        for n in names
    ]
    lines.append(f"| tok/s of each repeat | {' | '.join(runs + [''] * len(peers))} |")
    same = "yes" if len({sides[n]["output_sha256"] for n in names}) == 1 else "no"
    lines.append(
        f"| identical completions | {' | '.join([''] * (len(head) - 1))} | {same} |"
    )
    return "\n".join(lines)


def report(result: TextResult) -> tuple[str, dict[str, Any]]:
    """The script's Markdown report and JSON document."""
    info = result.info
    m = info["machine"]
    parts = [
        "## Text: Maestro StreamText vs vLLM OpenAI server vs raw engine",
        "",
        f"Machine: {m['cpu_count']} CPUs, {m['cpu_model']} ({m['platform']}); "
        f"vllm {m['vllm']}, ray {m['ray']}. "
        f"{PROMPT_TOKENS} prompt tokens, max {OUTPUT_TOKENS} output tokens, "
        f"greedy; prompts per run {info['prompts']}, {info['repeats']} repeat(s) "
        "per concurrency (the median-throughput run is shown)"
        + (" (--quick)" if info["quick"] else "")
        + ".",
    ]
    if info.get("kv_cache_tokens"):
        parts += ["", f"KV cache vLLM took: {info['kv_cache_tokens']}."]
    rows: list[dict[str, Any]] = []
    for concurrency in result.concurrencies:
        sides = result.sides_at(concurrency)
        parts += ["", table(concurrency, sides)]
        if concurrency == TARGET_CONCURRENCY:
            rows = [
                {
                    "check": t.label,
                    "value": _round(v),
                    "target": t.want,
                    "pass": t.met(v),
                }
                for t, v in checks(sides)
            ]
    if rows:
        parts += [
            "",
            f"### Targets at concurrency {TARGET_CONCURRENCY}",
            "",
            "| check | value | target | result |",
            "|---|---:|---|---|",
        ]
        parts += [
            f"| {c['check']} | {fmt(c['value'])} | {c['target']} "
            f"| {'PASS' if c['pass'] else 'MISSED'} |"
            for c in rows
        ]
    document = {**info, "results": result.results, "targets": rows}
    return "\n".join(parts) + "\n", document


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def section(page: Page, result: TextResult) -> None:
    """The suite's text section: a table per concurrency, targets, the chart."""
    info = result.info
    page.add(
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
    page.error("text.peers", "text.maestro")
    for c in result.concurrencies:
        here = result.sides_at(c)
        if here:
            _suite_table(page, c, here)
    _chart(page, result)


def _suite_table(page: Page, c: int, here: dict[str, dict[str, Any]]) -> None:
    ratios = [p for p in ("vllm", "engine") if p in here and "maestro" in here]
    head = [SIDE_LABELS[n] for n in here]
    head += [f"Maestro / {SIDE_LABELS[p]}" for p in ratios]
    page.add(
        "",
        f"### Concurrency {c}",
        "",
        "| metric | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    )
    for label, key, comparable in SUITE_ROWS:
        cells = [fmt(v.get(key)) for v in here.values()]
        for p in ratios:
            r = side_ratio(here["maestro"], here[p], key)
            cells.append(fmt(r) if comparable else "")
        page.add(f"| {label} | " + " | ".join(cells) + " |")
    if c != TARGET_CONCURRENCY:
        return
    for target, value in checks(here):
        if target.in_suite:
            page.target(target, value)
    if "engine" in here and "vllm" in here:
        peer = side_ratio(here["vllm"], here["engine"], "output_tok_s")
        page.note(
            f"For scale: at concurrency {c} vLLM's own server reached "
            f"{fmt(peer)}x the raw engine's tok/s in this run (a server "
            "pays for HTTP/gRPC, detokenized streaming and its share of "
            "the same cores; the in-process engine pays none of it)."
        )


def _chart(page: Page, result: TextResult) -> None:
    plt = pyplot()
    cs = result.concurrencies
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (
        ("output tok/s", ("output_tok_s",)),
        ("TTFT (ms): p50 solid, p99 dashed", ("ttft_p50_ms", "ttft_p99_ms")),
        ("ITL (ms): p50 solid, p99 dashed", ("itl_p50_ms", "itl_p99_ms")),
    )
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for n in (n for n in SIDE_LABELS if n in result.results):
            for key, style in zip(keys, ("-o", "--x"), strict=False):
                points = [
                    (c, r[key])
                    for c in cs
                    if (r := result.results[n].get(c)) and r.get(key) is not None
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
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
    page.chart(fig, "text_scaling", "text throughput and latency vs concurrency")
