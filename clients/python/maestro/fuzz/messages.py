"""Messages of any type generated from their descriptors, field by field."""

from __future__ import annotations

import random
from typing import Any

from google.protobuf import message as _message

from maestro.fuzz.values import (
    _ALPHABET,
    _CHEAP,
    _CHEAP_IN,
    _FIELD_STRINGS,
    _FLOATS,
    _HOSTILE,
    _INTS,
    _NICE,
    _NON_FINITE,
    _OFTEN_SET,
    _OUT_OF_RANGE,
    _OUT_OF_RANGE_SIZE,
    _RANGES,
    _png,
    png_bomb,
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
