"""A report page in construction, and the number formats every table uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.targets import Target
from maestro import envs


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: `-` for None, thousands separators, `digits` decimals."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(a: Any, b: Any) -> float | None:
    """a / b, or None when either is missing (or b is 0)."""
    return None if a is None or not b else a / b


def pyplot() -> Any:
    """matplotlib's pyplot on the backend `envs.MPLBACKEND` names (no screen)."""
    import matplotlib

    matplotlib.use(envs.MPLBACKEND.get())
    import matplotlib.pyplot as plt

    return plt


class Page:
    """Lines of Markdown, charts beside them, and the rows of the targets table.

    Sections write to a page; `errors` (section name -> traceback text) are
    the suite's failed sections, quoted where the section would be.
    """

    def __init__(self, chart_dir: Path, rel: str, errors: dict[str, str]) -> None:
        self.chart_dir = chart_dir
        self.rel = rel
        self.errors = errors
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def chart(self, fig: Any, name: str, caption: str) -> None:
        """Save `fig` as `<chart_dir>/<name>.png` and link it here."""
        self.chart_dir.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(self.chart_dir / f"{name}.png", dpi=110)
        pyplot().close(fig)
        self.add("", f"![{caption}]({self.rel}/{name}.png)")

    def target(self, target: Target, value: float | None) -> None:
        """A row of the targets table: the value held to `target`."""
        self.targets.append(
            (target.label, fmt(value), target.want, target.verdict(value))
        )

    def note(self, text: str) -> None:
        """A paragraph under the targets table."""
        self.notes.append(text)

    def error(self, *names: str) -> None:
        """The first line of each failed section's error, where it would be."""
        for name in names:
            if name in self.errors:
                first = self.errors[name].splitlines()[0]
                self.add("", f"**{name} failed**: `{first[:400]}`")
