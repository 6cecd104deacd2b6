"""Text preparation for speech: segmentation and vocabulary normalization.

Segmentation decides streaming latency: a stream's first chunk waits only
for its first segment. The text is split after sentence ends (`.`, `!`, `?`,
`…`, `;` and line breaks); a sentence longer than `max_chars` is split again
after clause marks (`,`, `:`, dashes), packing clauses greedily up to
`max_chars`; a clause still too long is split between words.

Normalization maps text onto the characters the checkpoint was trained on
(VITS/MMS-TTS models read characters, not words), never failing:

1. Unicode NFKC, then typographic quotes and dashes become `'` and `-`.
2. Lowercase when the vocabulary has no uppercase letters (MMS-TTS).
3. A character outside the vocabulary is replaced by its accent-free form
   when that is in the vocabulary (`é` → `e`); otherwise it becomes a word
   break (a space), so `"well,then"` reads as two words and emoji vanish.
4. Runs of spaces collapse; leading and trailing spaces go.

A segment that normalizes to nothing (say, only emoji) is skipped; a text
with no speakable segment at all is a bad request, reported by the engine.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["normalize", "split_segments"]

_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201b": "'",
        "`": "'",
        "\u00b4": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
    }
)
# A sentence ends at . ! ? … or ; (plus closing quotes/brackets) before space,
# or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026;])[\"'\u201d\u2019)\]]*\s+|\s*\n\s*")
_CLAUSE_END = re.compile(r"(?<=[,:\u2013\u2014])\s+|\s+(?=[-\u2013\u2014]\s)")


def normalize(text: str, vocabulary: Iterable[str]) -> str:
    """`text` spelled only with characters of `vocabulary` (see module doc)."""
    vocab = frozenset(vocabulary)
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    if not any(c.isupper() for c in vocab):
        text = text.lower()
    word_break = " " if " " in vocab else ""
    out: list[str] = []
    for char in text:
        if char in vocab:
            out.append(char)
            continue
        base = "".join(
            c
            for c in unicodedata.normalize("NFKD", char)
            if not unicodedata.combining(c)
        )
        out.append(base if base and all(c in vocab for c in base) else word_break)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def split_segments(text: str, max_chars: int) -> list[str]:
    """Sentences, and clauses of sentences longer than `max_chars`, in order."""
    segments: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            segments.append(sentence)
            continue
        clauses = [c for c in _CLAUSE_END.split(sentence) if c.strip()]
        segments.extend(_pack(clauses, max_chars, " "))
    return segments


def _pack(parts: list[str], max_chars: int, joiner: str) -> list[str]:
    """Greedily join `parts` into pieces of at most `max_chars` where possible."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        if len(part) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.extend(_split_words(part, max_chars))
            continue
        candidate = f"{current}{joiner}{part}" if current else part
        if len(candidate) <= max_chars:
            current = candidate
        else:
            pieces.append(current)
            current = part
    if current:
        pieces.append(current)
    return pieces


def _split_words(text: str, max_chars: int) -> list[str]:
    words: list[str] = []
    for word in text.split():
        # A "word" longer than a segment (a URL, a run of digits) is cut.
        words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return _pack(words, max_chars, " ") if words else []
