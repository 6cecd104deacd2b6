"""Prompts of exactly PROMPT_TOKENS tokens, new for every run."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lib.serve_config import MODELS

MODEL_DIR = MODELS / "text"
MODEL_ID = "maestro-demo-llm"
PROMPT_TOKENS = 64
OUTPUT_TOKENS = 64
# Prompts per concurrency: enough requests that the run reaches steady state.
# Runs of a few seconds swing with whatever else the 2 cores do; 512 streams
# at concurrency 32 keep the server saturated for ~8 s.
PROMPTS = {1: 16, 8: 128, 32: 512, 64: 512}
QUICK_PROMPTS = {1: 8, 8: 64, 32: 192, 64: 256}
# Words for prompts: plain, mostly short, so a prompt can be trimmed to
# exactly PROMPT_TOKENS by appending single-token words.
WORDS = (
    "the a an of to in on at by for with from and or but if so as is was are "
    "be it he she we they you I me my our his her its this that these those "
    "cat dog bird fish tree river stone cloud rain wind sun moon star road "
    "house door window garden city village market ship train field hill "
    "walks runs sings reads writes builds finds keeps opens closes sees hears "
    "red blue green old new small large quiet bright dark warm cold early "
    "late slowly quickly again always never often today tomorrow night day"
).split()


def make_prompt(tokenizer: Any, label: str) -> dict[str, Any]:
    """A deterministic word sequence that encodes to exactly PROMPT_TOKENS ids.

    Maestro encodes a text prompt with `tok.encode(prompt)` (BOS included); the
    ids recorded here are those, and vLLM gets them as the prompt itself.
    Words that would overshoot are skipped, so short words close the gap.
    """
    rng = random.Random(label)
    words: list[str] = []
    for _ in range(10_000):
        candidate = [*words, rng.choice(WORDS)]
        ids = tokenizer.encode(" ".join(candidate))
        if len(ids) <= PROMPT_TOKENS:
            words = candidate
        if len(ids) == PROMPT_TOKENS:
            return {"text": " ".join(words), "ids": list(ids)}
    raise RuntimeError(f"no {PROMPT_TOKENS}-token prompt for {label!r}")


def make_prompts(tokenizer: Any, run: str, count: int) -> list[dict[str, Any]]:
    """Distinct prompts per run, so no run hits another's prefix cache."""
    return [make_prompt(tokenizer, f"{run}/{i}") for i in range(count)]


def tokenizer() -> Any:
    """The demo model's tokenizer (transformers, imported here: it is slow)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR))


def write_prompt_files(
    concurrencies: Sequence[int], quick: bool, workdir: Path
) -> tuple[dict[int, tuple[Path, int]], dict[int, int]]:
    """One file per concurrency: warm-up prompts first, then measured ones."""
    tok = tokenizer()
    table = QUICK_PROMPTS if quick else PROMPTS
    files: dict[int, tuple[Path, int]] = {}
    counts: dict[int, int] = {}
    for c in concurrencies:
        counts[c] = table.get(c, 8 * c)
        warmup = max(4, c)
        prompts = make_prompts(tok, f"c{c}", warmup + counts[c])
        path = workdir / f"prompts-c{c}.json"
        path.write_text(json.dumps(prompts))
        files[c] = (path, warmup)
    return files, counts
