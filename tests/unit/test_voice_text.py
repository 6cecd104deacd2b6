"""Text preparation for speech: segmentation and vocabulary normalization."""

from __future__ import annotations

import pytest

from deployments.engines.voice.segmentation import normalize, split_segments

# The demo checkpoint's (and MMS-TTS-eng's) character inventory.
VOCAB = set(" '-0123456789abcdefghijklmnopqrstuvwxyz")


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Hello, World!", "hello world"),
        ("Caf\u00e9 na\u00efve co\u00f6perate", "cafe naive cooperate"),
        ("It\u2019s a \u201cquote\u201d \u2014 ok", "it's a quote - ok"),
        ("well,then", "well then"),
        ("\U0001f600 smile \U0001f600", "smile"),
        ("  many    spaces\tand\nlines ", "many spaces and lines"),
        ("\uff28\uff49", "hi"),  # full-width letters (NFKC)
        ("\u4f60\u597d", ""),  # nothing speakable in this vocabulary
        ("R2-D2 is 42", "r2-d2 is 42"),
    ],
)
def test_normalize_maps_onto_the_vocabulary(text: str, spoken: str) -> None:
    assert normalize(text, VOCAB) == spoken
    assert set(normalize(text, VOCAB)) <= VOCAB


def test_normalize_keeps_case_when_the_vocabulary_has_uppercase() -> None:
    assert normalize("Hi There", VOCAB | {"H", "T"}) == "Hi There"


def test_normalize_drops_without_a_space_in_the_vocabulary() -> None:
    assert normalize("a, b!", set("ab")) == "ab"


def test_sentences_become_segments_in_order() -> None:
    text = 'One two. Three four! Is it five? "Six," she said. Seven; eight\nNine'
    assert split_segments(text, 120) == [
        "One two.",
        "Three four!",
        "Is it five?",
        '"Six," she said.',
        "Seven;",
        "eight",
        "Nine",
    ]


def test_decimals_and_abbreviation_dots_without_space_stay_together() -> None:
    segments = split_segments("Pi is 3.14 today. Next", 120)
    assert segments == ["Pi is 3.14 today.", "Next"]


def test_long_sentences_split_at_clauses_then_words() -> None:
    text = (
        "first clause is here, second clause follows it, third one: "
        "and a fourth - with a dash"
    )
    segments = split_segments(text, 40)
    assert segments == [
        "first clause is here,",
        "second clause follows it, third one:",
        "and a fourth - with a dash",
    ]
    assert split_segments("aaaa bbbb - cccc dddd", 10) == [
        "aaaa bbbb",
        "- cccc",
        "dddd",
    ]
    assert all(len(s) <= 40 for s in segments)
    words = " ".join(["word"] * 30)
    pieces = split_segments(words, 24)
    assert all(len(p) <= 24 for p in pieces) and " ".join(pieces) == words
    assert split_segments("x" * 50, 20) == ["x" * 20, "x" * 20, "x" * 10]


def test_blank_text_has_no_segments() -> None:
    assert split_segments(" \n\t ", 120) == []
