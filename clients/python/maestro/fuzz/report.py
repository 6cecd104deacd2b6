"""A run as plain text: the rpc x code table, the families, the findings."""

from __future__ import annotations

import grpc

from maestro.fuzz.results import FuzzResult


def render(result: FuzzResult, examples: bool = False) -> str:
    """The rpc x code table, the families, and every finding, as plain text.

    `examples`: also one answer's details (and its request) per rpc and code.
    """
    rows = sorted({rpc for rpc, _ in result.tally})
    codes = sorted({code for _, code in result.tally}, key=code_order)
    width = max([len(r) for r in rows] + [len("rpc")])
    cell = [max(len(c), 5) for c in codes]
    lines = [
        f"{result.requests} requests in {result.seconds:.1f} s, "
        f"{len(result.findings)} findings",
        "",
        "  ".join(
            [
                "rpc".ljust(width),
                *(c.rjust(w) for c, w in zip(codes, cell, strict=True)),
            ]
        ),
    ]
    for rpc in rows:
        counts = (str(result.tally.get((rpc, c), "")) for c in codes)
        lines.append(
            "  ".join(
                [
                    rpc.ljust(width),
                    *(n.rjust(w) for n, w in zip(counts, cell, strict=True)),
                ]
            )
        )
    kinds = sorted({k for k, _ in result.kinds})
    lines.append("")
    for kind in kinds:
        seen = ", ".join(
            f"{c} {n}" for (k, c), n in sorted(result.kinds.items()) if k == kind
        )
        lines.append(f"{kind}: {seen}")
    if result.families:
        lines.append("")
        for fam in result.families:
            answered = "answered" if fam.answered else f"NOT answered ({fam.detail})"
            lines.append(f"{fam.family}: {fam.status}, good request {answered}")
    if examples:
        lines.append("")
        for (rpc, code), (details, request) in sorted(result.examples.items()):
            if code != "OK":
                lines.append(f"{rpc} {code}: {details!r}\n    for {request[:160]}")
    for f in result.findings:
        lines += ["", f"FINDING {f.rpc} {f.code} [{f.kind}]: {f.why}"]
        lines += [f"  details: {f.details!r}", f"  request: {f.request}"]
    return "\n".join(lines)


def code_order(name: str) -> int:
    return grpc.StatusCode[name].value[0]
