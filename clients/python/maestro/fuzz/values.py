"""Hostile field values: numeric extremes, strings, and PNGs good and bad."""

from __future__ import annotations

import struct
import zlib

from google.protobuf import descriptor as _descriptor

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_RANGES = {
    _descriptor.FieldDescriptor.CPPTYPE_INT32: _INT32,
    _descriptor.FieldDescriptor.CPPTYPE_INT64: _INT64,
    _descriptor.FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    _descriptor.FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_INTS = (0, 1, -1, 2, 7, 255, 65_535, 10**6, 10**12, *_INT32, *_INT64, 2**32 - 1)
_FLOATS = (0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 7.5, 1e-45, 1e38, -1e38, 3.4e38, 1e300)
_NON_FINITE = (float("nan"), float("inf"), float("-inf"))

# Counts that make a valid request expensive on a CPU: a generated value is
# small and valid or out of range, never 0/unset (the server's default).
_CHEAP = {
    "width": (64,),
    "height": (64,),
    "steps": (1, 2),
    "max_tokens": (1, 2, 3, 4),
    "num_images": (1,),
    "num_scenes": (1,),
    "num_frames": (1, 2),
}
# The plan of one scene needs ~100 tokens; below that Compose refuses the budget.
_CHEAP_IN = {("ComposeTextSettings", "max_tokens"): (1, 4, 128)}
_OUT_OF_RANGE = (-1, -7, 10**6, *_INT32)
_OUT_OF_RANGE_SIZE = (-64, 7, 63, 65, 257, 100_000)

_NICE = ("hi", "a cat on a mat", "The quick brown fox. It jumps!", "héllo wörld")
_HOSTILE = (
    "",
    " ",
    "\x00",
    "\x00\x01\x02\x1b[31m\x7f",
    "\t\n\r\x0b\x0c",
    "日本語のテキスト 🎉🔥 \u202eevil\u202c",
    "\u0000\ufeff\ufffe\uffff",
    "%s%n%x{0}{}",
    "../../../../etc/passwd",
    "'; DROP TABLE x; --",
    "<script>alert(1)</script>",
    "{{7*7}}${7*7}",
    '{"a": [1, 2, {"b": null}]}',
    "null",
    "NaN",
)
_FIELD_STRINGS: dict[str, tuple[str, ...]] = {
    "model": ("", "", "", "no-such-model", "maestro-demo-llm", "../x", "\x00"),
    "scheduler": ("", "", "euler", "ddim", "dpm++", "no-such", "EULER"),
    "voice": ("", "", "0", "1", "-1", "99", "speaker", "\x00"),
    "role": ("user", "user", "assistant", "system", "tool", "", "ROOT", "\x00"),
    "name": ("demo-style", "demo-style", "", "no-such-lora", "../loras"),
    "regex": (
        "",
        "",
        "[a-z]+",
        "(a|b)*c",
        "(?=a)a",  # lookahead: Python compiles it, grammar engines may not
        "(a)\\1",  # backreference
        "a{0,100000}",
        "((((((((((a))))))))))*",
        "\\p{L}+",
        "[",
    ),
    "json_schema": (
        "",
        "",
        '{"type": "string"}',
        '{"type": "object", "properties": {"a": {"type": "integer"}}}',
        '{"$ref": "#/definitions/missing"}',
        '{"type": "string", "pattern": "(?=a)a"}',
        '{"type": "array", "minItems": 100000}',
        '{"type": "integer", "minimum": 5, "maximum": 1}',
        '{"allOf": [{"type": "string"}, {"type": "integer"}]}',
        '{"type": "nonsense"}',
        "[]",
        "{",
    ),
}
_OFTEN_SET = {"prompt", "text", "brief"}
# Code points for random text: printable or not, every plane-0 script below 0x300.
_ALPHABET = [chr(c) for c in range(1, 0x300)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A well-formed PNG header declaring `width` x `height` RGB pixels.

    Its pixel data is a few rows of zeros: a decoder that trusts the header
    allocates tens of gigabytes before it finds the rows missing.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 1024)) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )


def _png(width: int, height: int) -> bytes:
    """A small valid grey PNG."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress((b"\x00" + b"\x80" * width) * height)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )
