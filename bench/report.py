"""The suite's Markdown report and PNG charts, from its JSON document.

Every figure sits beside its peer or limit from the same run, with the ratio;
targets (`bench.targets`) are checked here, never by a timed test, and a
missed one says so. Each section is rendered by its family's bench from that
family's result object; this module reads them out of the document and puts
the page together. `python -m bench.report bench/results/<stamp>.json`
rewrites the report of a past run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    autoscale,
    gpu_report,
    image_bench,
    memory_report,
    platform_bench,
    studio_bench,
    voice_bench,
)
from bench.lib.markdown import Page, fmt
from bench.memory_report import MemoryResult
from bench.text import section as text_section
from bench.text.result import TextResult


class Report:
    """One suite document rendered: header, targets table, then every section."""

    def __init__(self, doc: dict[str, Any], chart_dir: Path, rel: str) -> None:
        self.doc = doc
        self.r = doc["results"]
        self.page = Page(chart_dir, rel, doc["errors"])

    def _present(self, *names: str) -> bool:
        """Whether any of the named results exists; if none, their errors."""
        if any(self.r.get(n) for n in names):
            return True
        self.page.error(*names)
        return False

    # --- sections, each from its family's result ---------------------------------

    def header(self) -> None:
        m = self.doc["machine"]
        gpu = m.get("gpu") or "none"
        self.page.add(
            f"# Maestro benchmark suite — {self.doc.get('timestamp', '')}",
            "",
            f"Machine: **{m['cpu_model']}**, {m['cpu_count']} cores, "
            f"{m['memory_gib']} GiB memory, GPU: {gpu}; {m['platform']}; "
            f"Python {m['python']}, vllm {m['vllm']}, ray {m['ray']}.",
            "",
            f"Mode: {'--quick' if self.doc['quick'] else 'full'}; sections: "
            f"{', '.join(self.doc['sections'])}; took "
            f"{fmt(self.doc['durations_s'].get('total'), 0)} s. Every figure was "
            "measured in this run on this machine unless marked otherwise (the "
            "GPU section cites the device-machine report). Load generators run "
            "on the same cores as the servers; on a 2-core machine figures move "
            "by tens of percent between runs.",
        )
        tracing = (self.doc.get("observability") or {}).get("tracing") or {}
        if tracing:
            on = tracing.get("enabled")
            self.page.add(
                "",
                "Maestro stacks run serve_config.yaml as `make serve` does, "
                f"tracing {'on' if on else 'off'}"
                + (
                    f" (exporter {tracing.get('exporter')}, sampling ratio "
                    f"{tracing.get('sampling_ratio')})"
                    if on
                    else ""
                )
                + ".",
            )

    def text(self) -> None:
        names = ("text.peers", "text.maestro")
        if self._present(*names):
            found = [TextResult.from_dict(self.r[n]) for n in names if self.r.get(n)]
            merged = found[0].merged(found[1] if len(found) > 1 else None)
            text_section.section(self.page, merged)

    def platform(self) -> None:
        names = ("platform.list_models", "platform.handle_hop")
        if self._present(*names):
            result = platform_bench.PlatformResult.from_dicts(
                *(self.r.get(n) for n in names)
            )
            platform_bench.section(self.page, result)

    def image(self) -> None:
        if self._present("image.raw", "image.served"):
            result = image_bench.ImageResult.from_dicts(
                self.r.get("image.raw"), self.r.get("image.served")
            )
            image_bench.section(self.page, result)

    def voice(self) -> None:
        if self._present("voice.raw", "voice.served"):
            result = voice_bench.VoiceResult.from_dicts(
                self.r.get("voice.raw"), self.r.get("voice.served")
            )
            voice_bench.section(self.page, result)

    def studio(self) -> None:
        if self._present("studio"):
            result = studio_bench.StudioResult(**self.r["studio"])
            studio_bench.section(self.page, result)

    def scaling(self) -> None:
        doc = self.r.get("scaling.autoscale")
        result = autoscale.AutoscaleResult.from_doc(doc) if doc else None
        autoscale.section(self.page, result)

    def memory(self) -> None:
        mem = self.r.get("memory")
        if mem:
            text_info = (self.r.get("text.peers") or {}).get("info", {})
            memory_report.section(
                self.page, MemoryResult(**mem), text_info.get("kv_cache_tokens")
            )

    def gpu(self) -> None:
        gpu_report.section(self.page)

    # --- the page ------------------------------------------------------------------

    def summary(self) -> list[str]:
        lines = [
            "",
            "## Targets",
            "",
            "| check | value | target | verdict |",
            "|---|---:|---|---|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.page.targets]
        if self.page.notes:
            lines += ["", *self.page.notes]
        if self.doc["errors"]:
            lines += [
                "",
                f"Sections that failed: {', '.join(sorted(self.doc['errors']))}.",
            ]
        return lines

    def build(self) -> str:
        self.header()
        lines = self.page.lines
        head = len(lines)
        parts: list[Callable[[], None]] = [
            self.text,
            self.platform,
            self.image,
            self.voice,
            self.studio,
        ]
        if "scaling" in self.doc["sections"]:
            parts.append(self.scaling)
        for part in [*parts, self.memory, self.gpu]:
            try:
                part()
            except Exception as exc:  # one bad section must not lose the rest
                self.page.add("", f"**report of {part.__name__} failed**: `{exc!r}`")
        durations = ", ".join(f"{k} {v}" for k, v in self.doc["durations_s"].items())
        self.page.add("", f"Section times (s): {durations}.")
        return "\n".join(lines[:head] + self.summary() + lines[head:]) + "\n"


def write(doc: dict[str, Any], out: Path, stamp: str) -> Path:
    """`out/<stamp>.md` with charts in `out/<stamp>/`; returns the report's path."""
    path = out / f"{stamp}.md"
    path.write_text(Report(doc, out / stamp, stamp).build())
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0])
    doc = json.loads(path.read_text())
    print(write(doc, path.parent, path.stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
