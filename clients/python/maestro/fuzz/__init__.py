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

from maestro.fuzz.cases import Case, make_cases
from maestro.fuzz.families import check_families
from maestro.fuzz.messages import MessageFuzzer
from maestro.fuzz.report import code_order, render
from maestro.fuzz.results import FamilyCheck, Finding, FuzzResult
from maestro.fuzz.rpcs import Rpc, discover_rpcs
from maestro.fuzz.runner import ACCEPTABLE, fuzz
from maestro.fuzz.values import png_bomb

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
