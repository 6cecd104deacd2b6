"""Hostile input: requests generated from every RPC's descriptor, answers judged.

    python -m maestro.fuzz --target 127.0.0.1:9000 --requests 500 --seed 7

Walks every service of `maestro.v1`, builds each request field by field from
its descriptor with a seeded `random.Random` (numeric extremes, NaN and
infinities, empty/huge/non-ASCII/control-character strings, long repeated
fields, unknown enum values, garbage and decompression-bomb bytes), and also
sends bodies that are not protobuf at all, bad request ids, bad deadline
headers, unknown routing keys and missing or wrong API keys.

An answer is one a client can act on when its status is in `ACCEPTABLE` and
its details leak no Python internals. Anything else is a `Finding`: INTERNAL,
UNKNOWN, UNIMPLEMENTED for a served RPC, a traceback or exception class name
in the details, an unexpected CANCELLED, an OK for a call without a valid key,
or an OK response that does not parse. Afterwards `check_families` asks every
family for SERVING and for one good answer, so a request that wedged or killed
an engine shows too.

A generated request that happens to be valid stays cheap: every count that
makes work (sizes, steps, max_tokens, num_images, num_scenes, ...) is either
out of range or small and valid, never the server's default.
"""

from __future__ import annotations

import argparse
import random
import re
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.message_factory import GetMessageClass

from maestro import auth
from maestro.routing import FAMILIES, route
from maestro.v1 import image_pb2, models_pb2, studio_pb2, text_pb2, voice_pb2

__all__ = [
    "ACCEPTABLE",
    "Case",
    "FamilyCheck",
    "Finding",
    "FuzzResult",
    "MessageFuzzer",
    "Rpc",
    "check_families",
    "code_order",
    "discover_rpcs",
    "fuzz",
    "make_cases",
    "png_bomb",
    "render",
]

ACCEPTABLE = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
_LEAKS = re.compile(r"Traceback|<class |\b[A-Z][a-zA-Z]+(Error|Exception)\b")
# gRPC's words when a status (its details) did not fit the client's metadata limit.
_OVERSIZED = re.compile(r"metadata size exceeds|header list size|status: 5\d\d")
_SERVICE_FAMILY = {
    "TextService": "text",
    "ImageService": "image",
    "VoiceService": "voice",
    "StudioService": "studio",
    "ModelService": None,  # every application answers it
}
# Sent beside the deadline: Ray's ingress does not pass grpc-timeout on.
# Admin RPCs whose success changes the server (an unload means a reload, ~30 s
# of vLLM on a CPU): unless asked to, the fuzzer only names models that do
# not exist in them, so they can only fail.
_DISRUPTIVE = frozenset({"LoadModelRequest", "UnloadModelRequest"})
_TIMEOUT_HEADER = getattr(auth, "TIMEOUT_HEADER", "x-maestro-timeout-ms")
_REQUEST_ID_HEADER = "x-request-id"


# --- the RPCs -----------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """One method of a `maestro.v1` service, as its descriptor has it."""

    service: str  # full name, e.g. maestro.v1.TextService
    method: str
    family: str | None  # None: any application answers it
    request: type[_message.Message]
    response: type[_message.Message]
    streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def name(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}/{self.method}"


def discover_rpcs() -> list[Rpc]:
    """Every RPC of the Text, Image, Voice, Studio and Model services."""
    rpcs = []
    for module in (text_pb2, image_pb2, voice_pb2, studio_pb2, models_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpcs.append(
                    Rpc(
                        service=service.full_name,
                        method=method.name,
                        family=_SERVICE_FAMILY[service.name],
                        request=GetMessageClass(method.input_type),
                        response=GetMessageClass(method.output_type),
                        streaming=method.server_streaming,
                    )
                )
    return rpcs


# --- values -------------------------------------------------------------------

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
_BAD_REQUEST_IDS = (
    "\x00",
    "new\nline",
    "tab\there",
    "éèà",
    "🎉",
    "x" * 129,
    "x" * 10_000,
    "\x7f",
)
_BAD_HEADER_IDS = (
    "x" * 129,
    "y" * 4_000,
)  # printable ASCII only: gRPC refuses to send anything else
_BAD_TIMEOUTS = ("-5", "0", "abc", "1e9", "99999999999999999999999", "", "1.5", "NaN")
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


class MessageFuzzer:
    """Builds hostile messages of any type from its descriptor, reproducibly."""

    def __init__(self, rng: random.Random, max_depth: int = 3) -> None:
        self.rng = rng
        self.max_depth = max_depth

    def message(self, cls: type[_message.Message]) -> _message.Message:
        msg = cls()
        self._huge_left = 2  # huge strings per message: bounds its size
        self._fill(msg, 0)
        return msg

    def mutant(self, base: _message.Message, fields: int = 2) -> _message.Message:
        """A copy of `base` with up to `fields` of its fields made hostile."""
        msg = type(base)()
        msg.CopyFrom(base)
        self._huge_left = 1
        for fd in self.rng.sample(list(msg.DESCRIPTOR.fields), k=fields):
            msg.ClearField(fd.name)
            try:
                self._set(msg, fd, 0, _is_costly(fd))
            except (ValueError, TypeError, OverflowError):
                continue
        return msg

    def _fill(self, msg: _message.Message, depth: int) -> None:
        desc = msg.DESCRIPTOR
        chosen = {  # one field of each real oneof
            id(o): self.rng.choice(list(o.fields))
            for o in desc.oneofs
            if len(o.fields) > 1
        }
        for fd in desc.fields:
            oneof = fd.containing_oneof
            if (
                oneof is not None
                and id(oneof) in chosen
                and chosen[id(oneof)] is not fd
            ):
                continue
            costly = _is_costly(fd)
            if not costly and not self._wants(fd, depth):
                continue
            try:
                self._set(msg, fd, depth, costly)
            except (ValueError, TypeError, OverflowError):
                continue  # a value this field's type cannot hold

    def _wants(self, fd: Any, depth: int) -> bool:
        if fd.message_type is not None and _has_costly(fd.message_type):
            return True  # its counts must not fall back to the defaults
        if fd.message_type is not None and depth >= self.max_depth:
            return False
        return self.rng.random() < (0.85 if fd.name in _OFTEN_SET else 0.5)

    def _set(self, msg: _message.Message, fd: Any, depth: int, costly: bool) -> None:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target = getattr(msg, fd.name)
            key_fd, value_fd = fd.message_type.fields
            for _ in range(self._count()):
                key = self._scalar(key_fd)
                if value_fd.message_type is not None:
                    self._fill(target[key], depth + 1)
                else:
                    target[key] = self._scalar(value_fd)
            return
        if fd.is_repeated:
            target = getattr(msg, fd.name)
            for _ in range(self._count()):
                if fd.message_type is not None:
                    self._fill(target.add(), depth + 1)
                else:
                    target.append(self._scalar(fd, short=True))
            return
        if fd.message_type is not None:
            self._fill(getattr(msg, fd.name), depth + 1)
            return
        setattr(msg, fd.name, self._cost(fd) if costly else self._scalar(fd))

    def _count(self) -> int:
        roll = self.rng.random()
        if roll < 0.15:
            return 0
        if roll < 0.75:
            return self.rng.randint(1, 3)
        if roll < 0.9:
            return self.rng.randint(8, 70)
        return self.rng.choice((500, 1000))

    def _cost(self, fd: Any) -> int:
        cheap = _CHEAP_IN.get((fd.containing_type.name, fd.name), _CHEAP[fd.name])
        if self.rng.random() < 0.5:
            return self.rng.choice(cheap)
        extremes = _OUT_OF_RANGE_SIZE if fd.name in ("width", "height") else ()
        return self.rng.choice(_OUT_OF_RANGE + extremes)

    def _scalar(self, fd: Any, short: bool = False) -> Any:
        cpp = fd.cpp_type
        rng = self.rng
        if cpp in _RANGES:
            lo, hi = _RANGES[cpp]
            value = rng.choice(_INTS) if rng.random() < 0.8 else rng.randint(-100, 100)
            return min(max(value, lo), hi)
        if cpp in (fd.CPPTYPE_FLOAT, fd.CPPTYPE_DOUBLE):
            roll = rng.random()
            if roll < 0.25:
                return rng.choice(_NON_FINITE)
            if roll < 0.7:
                return rng.choice(_FLOATS)
            return rng.uniform(-3.0, 3.0)
        if cpp == fd.CPPTYPE_BOOL:
            return rng.random() < 0.5
        if cpp == fd.CPPTYPE_ENUM:
            known = [v.number for v in fd.enum_type.values]
            unknown = [-1, len(known), 99, 2**31 - 1, -(2**31)]
            return rng.choice(known if rng.random() < 0.6 else unknown)
        if cpp == fd.CPPTYPE_STRING and fd.type == fd.TYPE_BYTES:
            return self._bytes(fd)
        return self._string(fd, short)

    def _string(self, fd: Any, short: bool) -> str:
        rng = self.rng
        if fd.name in _FIELD_STRINGS and rng.random() < 0.8:
            return rng.choice(_FIELD_STRINGS[fd.name])
        if fd.name == "request_id":
            return "" if rng.random() < 0.8 else f"fuzz-{rng.randrange(10**9)}"
        roll = rng.random()
        if roll < 0.45:
            return rng.choice(_NICE)
        if roll < 0.8 or short or self._huge_left <= 0:
            return rng.choice(_HOSTILE)
        self._huge_left -= 1
        if roll < 0.9:
            return rng.choice(("A", "é", "🎉", "a. ")) * rng.choice((2_001, 100_000))
        return "".join(rng.choices(_ALPHABET, k=rng.choice((300, 3_000))))

    def _bytes(self, fd: Any) -> bytes:
        rng = self.rng
        imagey = "image" in fd.name
        roll = rng.random()
        if roll < 0.15:
            return b""
        if imagey and roll < 0.45:
            return png_bomb(*rng.choice(((100_000, 100_000), (65_535, 1), (0, 0))))
        if imagey and roll < 0.6:
            return rng.choice((_png(64, 64), _png(8, 8), _png(64, 64)[:40]))
        if imagey and roll < 0.7:
            return b"\xff\xd8\xff\xe0" + rng.randbytes(64)  # a JPEG's start
        return rng.randbytes(rng.choice((1, 16, 1024, 70_000)))


def _is_costly(fd: Any) -> bool:
    return fd.name in _CHEAP and fd.cpp_type in _RANGES and not fd.is_repeated


def _has_costly(desc: Any, depth: int = 0) -> bool:
    return depth < 4 and any(
        _is_costly(f)
        or (f.message_type is not None and _has_costly(f.message_type, depth + 1))
        for f in desc.fields
    )


# Valid and cheap requests that mutants start from: one or two hostile fields
# in an otherwise good request reach further than a request hostile all over.
_BASES: dict[str, dict[str, Any]] = {
    "GenerateTextRequest": {"prompt": "hi", "max_tokens": 2},
    "StreamTextRequest": {"prompt": "hi", "max_tokens": 2},
    "GenerateImageRequest": {"prompt": "x", "width": 64, "height": 64, "steps": 1},
    "StreamImageRequest": {"prompt": "x", "width": 64, "height": 64, "steps": 1},
    "SynthesizeRequest": {"text": "hi"},
    "StreamSpeechRequest": {"text": "hi"},
    "ComposeRequest": {
        "brief": "a cat",
        "num_scenes": 1,
        "image": {"width": 64, "height": 64, "steps": 1},
        "text": {"max_tokens": 128},
    },
}


# --- cases --------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One call to make: its RPC, body bytes, metadata, and what it probes."""

    rpc: Rpc
    kind: str  # a name in make_cases' kinds: proto, mutant, raw, no_key, ...
    body: bytes
    metadata: tuple[tuple[str, str], ...]
    summary: str

    @property
    def needs_rejection(self) -> bool:
        """An OK answer to this case is a finding."""
        return self.kind in ("no_key", "wrong_key", "bad_request_id")


def _summary(msg: _message.Message, limit: int = 300) -> str:
    """A short, one-line repr of `msg`: long values cut to their first characters."""
    parts = []
    for fd, value in msg.ListFields():
        if fd.is_repeated:
            first = _short(value[0]) if len(value) else ""
            parts.append(f"{fd.name}=[{len(value)}: {first}...]")
        else:
            parts.append(f"{fd.name}={_short(value)}")
    text = f"{msg.DESCRIPTOR.name}({', '.join(parts)})"
    return text if len(text) <= limit else text[:limit] + "..."


def _short(value: Any) -> str:
    if isinstance(value, _message.Message):
        return _summary(value, 120)
    if isinstance(value, str | bytes) and len(value) > 24:
        return f"{value[:16]!r}...<{len(value)}>"
    return repr(value)


def _not_protobuf(rng: random.Random, msg: _message.Message) -> tuple[bytes, str]:
    """Bytes that fail to parse as `msg`'s type, and what they are."""
    good = msg.SerializeToString()
    string_fd = next(
        (f for f in msg.DESCRIPTOR.fields if f.type == f.TYPE_STRING), None
    )
    choices: list[tuple[str, Callable[[], bytes]]] = [
        ("garbage", lambda: rng.randbytes(rng.choice((3, 64, 4096)))),
        ("truncated", lambda: good[: max(1, len(good) - rng.randint(1, 4))]),
        ("field-0", lambda: b"\x00" + good),
        ("wire-type-7", lambda: b"\x0f\x01" + good),
        ("huge-length", lambda: b"\x12\xff\xff\xff\xff\x07abc"),
        ("unterminated-varint", lambda: b"\x08" + b"\xff" * 11),
        ("text", lambda: b'{"prompt": "hi", "max_tokens": 2}'),
        ("http", lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    if string_fd is not None:
        tag = bytes([string_fd.number << 3 | 2])
        choices.append(("invalid-utf8", lambda: tag + b"\x04\xff\xfe\xc3\x28"))
    label, make = rng.choice(choices)
    data = make()
    try:
        type(msg).FromString(data)
    except Exception:
        return data, label
    return b"\x0f\x01" + data, label  # parsed after all: make sure it cannot


def _defang(msg: _message.Message) -> None:
    """A model name no server registers, the fuzzed text kept inside it."""
    msg.model = "fuzz-no-such-model:" + msg.model  # type: ignore[attr-defined]


def make_cases(
    count: int,
    seed: int,
    api_key: str | None,
    timeout_s: float,
    disruptive: bool = False,
) -> Iterator[Case]:
    """`count` cases, the same for the same seed (and key).

    `disruptive`: let LoadModel/UnloadModel name real models (or none: the
    family's default), which loads and unloads them.
    """
    rng = random.Random(seed)
    fuzzer = MessageFuzzer(rng)
    rpcs = discover_rpcs()
    kinds = (
        ("proto", 40),
        ("mutant", 30),
        ("raw", 8),
        ("bad_request_id", 6),
        ("bad_timeout", 4),
        ("no_key", 5),
        ("wrong_key", 4),
        ("bad_route", 3),
    )
    names, weights = zip(*kinds, strict=True)
    for _ in range(count):
        rpc = rng.choice(rpcs)
        kind = rng.choices(names, weights)[0]
        if kind == "mutant" and (base := _BASES.get(rpc.request.DESCRIPTOR.name)):
            n = min(rng.choice((1, 1, 2)), len(rpc.request.DESCRIPTOR.fields))
            msg = fuzzer.mutant(rpc.request(**base), n)
        else:
            msg = fuzzer.message(rpc.request)
        if not disruptive and rpc.request.DESCRIPTOR.name in _DISRUPTIVE:
            _defang(msg)
        family = rpc.family or rng.choice(FAMILIES)
        deadline = ((_TIMEOUT_HEADER, str(int(timeout_s * 1000))),)
        key: tuple[tuple[str, str], ...] = auth.auth_metadata(api_key)
        extra: tuple[tuple[str, str], ...] = ()
        note = ""
        if kind == "no_key":
            key = ()
        elif kind == "wrong_key":
            key = auth.auth_metadata(rng.choice(("mae_wrong", "x" * 200, "Bearer")))
            key = rng.choice((key, (("authorization", "Basic dXNlcjpwYXNz"),)))
        elif kind == "bad_route":
            family = rng.choice(("", "nope", "TEXT", "text-x", "../text"))
        elif kind == "bad_timeout":
            deadline = ((_TIMEOUT_HEADER, rng.choice(_BAD_TIMEOUTS)),)
        elif kind == "bad_request_id":
            if "request_id" in msg.DESCRIPTOR.fields_by_name and rng.random() < 0.7:
                msg.request_id = rng.choice(_BAD_REQUEST_IDS)  # type: ignore[attr-defined]
            else:
                if "request_id" in msg.DESCRIPTOR.fields_by_name:
                    msg.request_id = ""  # type: ignore[attr-defined]
                extra = ((_REQUEST_ID_HEADER, rng.choice(_BAD_HEADER_IDS)),)
                note = f" + {_REQUEST_ID_HEADER}: {_short(extra[0][1])}"
        if kind == "raw":
            body, label = _not_protobuf(rng, msg)
            summary = f"<not protobuf: {label}, {len(body)} bytes>"
        else:
            body, summary = msg.SerializeToString(), _summary(msg) + note
        metadata = route(family) + key + deadline + extra
        yield Case(rpc, kind, body, metadata, summary)


# --- calls and verdicts --------------------------------------------------------


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


def _call(
    channel: grpc.Channel, case: Case, timeout_s: float, max_messages: int
) -> tuple[grpc.StatusCode, str, bool, list[bytes]]:
    """(code, details, cancelled by us, response bytes) of one call."""
    replies: list[bytes] = []
    try:
        if not case.rpc.streaming:
            stub = channel.unary_unary(case.rpc.path)
            replies.append(stub(case.body, timeout=timeout_s, metadata=case.metadata))
            return grpc.StatusCode.OK, "", False, replies
        call = channel.unary_stream(case.rpc.path)(
            case.body, timeout=timeout_s, metadata=case.metadata
        )
        for reply in call:
            replies.append(reply)
            if len(replies) >= max_messages:
                call.cancel()
                return grpc.StatusCode.CANCELLED, "", True, replies
        return call.code(), call.details() or "", False, replies
    except grpc.RpcError as error:
        return error.code(), error.details() or "", False, replies  # type: ignore[attr-defined]


def _verdict(
    case: Case, code: grpc.StatusCode, details: str, ours: bool, replies: list[bytes]
) -> str | None:
    """Why this answer is a finding, or None."""
    if code == grpc.StatusCode.CANCELLED:
        return None if ours else "CANCELLED that the client did not ask for"
    if code == grpc.StatusCode.UNIMPLEMENTED and case.kind == "bad_route":
        return None  # an unknown application: nothing serves the RPC there
    if code not in ACCEPTABLE:
        return f"{code.name} is not a status a client can act on"
    if _LEAKS.search(details):
        return "details leak Python internals"
    if _OVERSIZED.search(details):
        return "the status was too large for the client to read"
    if (code == grpc.StatusCode.OK or ours) and case.needs_rejection:
        return f"accepted a {case.kind.replace('_', ' ')} call"
    for reply in replies:
        try:
            case.rpc.response.FromString(reply)
        except Exception:
            return "response does not parse as " + case.rpc.response.DESCRIPTOR.name
    return None


def fuzz(
    target: str,
    requests: int = 1000,
    seed: int = 0,
    *,
    api_key: str | None = None,
    timeout_s: float = 15.0,
    max_seconds: float | None = None,
    concurrency: int = 4,
    max_stream_messages: int = 3,
    check: bool = True,
    disruptive: bool = False,
    progress: Callable[[int, FuzzResult], None] | None = None,
) -> FuzzResult:
    """Send `requests` generated calls to `target`; then check every family."""
    key = auth.default_api_key() if api_key is None else api_key
    result = FuzzResult()
    began = time.monotonic()
    stop_at = None if max_seconds is None else began + max_seconds
    cases = make_cases(requests, seed, key, timeout_s, disruptive)
    with (
        grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel,
        ThreadPoolExecutor(max(1, concurrency)) as pool,
    ):
        pending: dict[Future[tuple[Any, ...]], Case] = {}
        for case in cases:
            if stop_at is not None and time.monotonic() > stop_at:
                break
            if len(pending) >= 2 * max(1, concurrency):
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    _record(result, pending.pop(future), future.result(), progress)
            call = pool.submit(_call, channel, case, timeout_s, max_stream_messages)
            pending[call] = case
        for future in list(pending):
            _record(result, pending.pop(future), future.result(), progress)
    result.seconds = time.monotonic() - began
    if check:
        result.families = check_families(target, key)
    return result


def _record(
    result: FuzzResult,
    case: Case,
    answer: tuple[Any, ...],
    progress: Callable[[int, FuzzResult], None] | None,
) -> None:
    code, details, ours, replies = answer
    result.requests += 1
    result.tally[(case.rpc.name, code.name)] += 1
    result.kinds[(case.kind, code.name)] += 1
    result.examples.setdefault(
        (case.rpc.name, code.name), (details[:300], case.summary)
    )
    if why := _verdict(case, code, details, ours, replies):
        finding = Finding(
            case.rpc.name, code.name, details[:500], case.summary, case.kind, why
        )
        result.findings.append(finding)
    if progress is not None:
        progress(result.requests, result)


_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


# --- the families afterwards -------------------------------------------------


def _good_request(client: Any, family: str) -> None:
    if family == "text":
        client.generate_text("hi", max_tokens=2, seed=1)
    elif family == "image":
        client.generate_image("x", width=64, height=64, steps=1, seed=1)
    elif family == "voice":
        client.synthesize("hi", seed=1)
    elif family == "studio":
        events = list(
            client.compose("a cat", num_scenes=1, seed=1, width=64, height=64, steps=1)
        )
        if not events or not events[-1].HasField("done"):
            raise RuntimeError(f"Compose ended without done after {len(events)} events")
    else:  # pragma: no cover - FAMILIES has no other
        raise ValueError(family)


def check_families(
    target: str,
    api_key: str | None = None,
    families: Sequence[str] = FAMILIES,
    settle_s: float = 90.0,
    timeout_s: float = 120.0,
) -> list[FamilyCheck]:
    """Each family SERVING (waiting up to `settle_s`) and one good request answered."""
    from grpc_health.v1 import health_pb2

    from maestro.client import MaestroClient

    checks = []
    key = auth.default_api_key() if api_key is None else api_key
    with MaestroClient(target, timeout=timeout_s, api_key=key or "") as client:
        for family in families:
            deadline = time.monotonic() + settle_s
            status = "UNKNOWN"
            while True:
                try:
                    number = client.health(family)
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(number)
                except Exception as exc:
                    status = f"error: {exc}"
                if status == "SERVING" or time.monotonic() > deadline:
                    break
                time.sleep(2)
            check = FamilyCheck(family, status == "SERVING", status, answered=False)
            try:
                _good_request(client, family)
                check.answered = True
            except Exception as exc:
                check.detail = f"{type(exc).__name__}: {exc}"[:300]
            checks.append(check)
    return checks


# --- output ------------------------------------------------------------------


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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m maestro.fuzz", description=__doc__.splitlines()[0]
    )
    p.add_argument("--target", default="127.0.0.1:9000", help="HOST:PORT")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=15.0, help="deadline per call, s")
    p.add_argument("--max-seconds", type=float, default=None, help="stop sending after")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--no-check", action="store_true", help="skip the family checks")
    p.add_argument(
        "--disruptive", action="store_true", help="LoadModel/UnloadModel real models"
    )
    p.add_argument("--examples", action="store_true", help="one answer per rpc/code")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = fuzz(
        args.target,
        args.requests,
        args.seed,
        timeout_s=args.timeout,
        max_seconds=args.max_seconds,
        concurrency=args.concurrency,
        check=not args.no_check,
        disruptive=args.disruptive,
    )
    print(render(result, examples=args.examples))
    return 0 if not result.findings and (args.no_check or result.healthy) else 1


if __name__ == "__main__":
    sys.exit(main())
