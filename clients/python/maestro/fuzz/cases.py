"""Cases: one call each (RPC, body, metadata), of kinds from protobuf to bad keys."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import message as _message

from maestro import auth
from maestro.fuzz.messages import MessageFuzzer
from maestro.fuzz.rpcs import Rpc, discover_rpcs
from maestro.routing import FAMILIES, route

# Admin RPCs whose success changes the server (an unload means a reload, ~30 s
# of vLLM on a CPU; an adapter unloaded is gone until loaded again): unless
# asked to, the fuzzer only names models that do not exist in them, so they
# can only fail.
_DISRUPTIVE = frozenset(
    {
        "LoadModelRequest",
        "UnloadModelRequest",
        "LoadAdapterRequest",
        "UnloadAdapterRequest",
    }
)
# Sent beside the deadline: Ray's ingress does not pass grpc-timeout on.
_TIMEOUT_HEADER = getattr(auth, "TIMEOUT_HEADER", "x-maestro-timeout-ms")
_REQUEST_ID_HEADER = "x-request-id"
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

    `disruptive`: let the model and adapter admin RPCs name real models (or none: the
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
