"""What a run found: findings, the families afterwards, and the per-code tallies."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """An answer a client cannot act on."""

    rpc: str
    code: str
    details: str
    request: str
    kind: str
    why: str


@dataclass
class FamilyCheck:
    """A family after the run: health status and one good request's outcome."""

    family: str
    serving: bool
    status: str
    answered: bool
    detail: str = ""


@dataclass
class FuzzResult:
    """Per (rpc, code) counts, the findings, and the families afterwards."""

    tally: Counter[tuple[str, str]] = field(default_factory=Counter)
    kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    # The first (details, request) seen for each (rpc, code): what an answer said.
    examples: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    families: list[FamilyCheck] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0

    @property
    def healthy(self) -> bool:
        return bool(self.families) and all(
            f.serving and f.answered for f in self.families
        )

    @property
    def ok(self) -> bool:
        return not self.findings and self.healthy
