"""The storyboard plan: the JSON schema the text family must satisfy, and its
parsing and validation.

The schema is what makes planning work on any model, including the demo's
random weights: guided decoding (vLLM's `guidance` backend) only lets the model
emit JSON that matches it, with exactly `num_scenes` scenes and bounded
strings. Guided decoding guarantees shape, not sense: a random model may still
write a narration with nothing speakable in it, so `parse_plan` checks what the
schema cannot and the studio retries once with another seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from deployments.errors import InvalidArgument, MaestroError
from deployments.studio.config import PlanLimits

__all__ = [
    "PlanDraft",
    "PlanInvalid",
    "SceneDraft",
    "derive_seed",
    "parse_plan",
    "plan_max_tokens",
    "plan_messages",
    "plan_schema",
    "scene_lengths",
]

# Each string starts with a letter or digit (the voice family has something to
# say, the image prompt is not blank); guided decoding honours `pattern`.
_WORDY = r"^[A-Za-z0-9].*$"
# The same in printable ASCII minus `"` and `\\`: one token per character at most.
_WORDY_ASCII = r"^[A-Za-z0-9][ !#-\[\]-~]*$"
_JSON_OVERHEAD = 32  # braces, keys and quotes around the title
_SCENE_OVERHEAD = 40  # keys, quotes and commas of one scene
_MIN_CHARS = 8
_SEED_SPACE = 2**31  # every family accepts seeds in this range


class PlanInvalid(MaestroError):
    """The text model's plan did not pass validation (after one retry)."""

    # The model, not the client, produced the bad output; the message says so.
    # (INTERNAL with a specific message, unlike unexpected errors' generic one.)


@dataclass(frozen=True)
class SceneDraft:
    narration: str
    image_prompt: str


@dataclass(frozen=True)
class PlanDraft:
    title: str
    scenes: tuple[SceneDraft, ...]


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one child call, fixed by the storyboard seed and its role.

    Hashing (not `seed + i`) keeps scenes independent: scene 1's image seed is
    never scene 0's retry seed, and changing `num_scenes` leaves the others.
    """
    text = ":".join(str(p) for p in (seed, *parts)).encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SEED_SPACE


def _string(max_len: int, ascii_text: bool) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_len,
        "pattern": _WORDY_ASCII if ascii_text else _WORDY,
    }


def plan_max_tokens(limits: PlanLimits, requested: int | None = None) -> int:
    """The plan's token budget: the request's text.max_tokens, else config."""
    return requested if requested is not None else limits.max_tokens


def scene_lengths(
    num_scenes: int, limits: PlanLimits, budget: int
) -> tuple[int, int, int]:
    """(title, narration, image prompt) maximum lengths that fit `budget`.

    Worst case one token per character (see `PlanLimits.ascii_text`) plus JSON
    syntax; narration and prompt shrink in proportion when scenes are many.
    """
    title = min(limits.title_chars, max(_MIN_CHARS, budget // 16))
    per_scene = (budget - title - _JSON_OVERHEAD) // num_scenes - _SCENE_OVERHEAD
    wanted = limits.narration_chars + limits.image_prompt_chars
    if per_scene >= wanted:
        return title, limits.narration_chars, limits.image_prompt_chars
    narration = per_scene * limits.narration_chars // wanted
    prompt = per_scene - narration
    if min(narration, prompt) < _MIN_CHARS:
        raise InvalidArgument(
            field="text.max_tokens",
            value=budget,
            allowed=f"a budget that fits {num_scenes} scenes of at least "
            f"{_MIN_CHARS} characters (raise it or ask for fewer scenes)",
        )
    return title, narration, prompt


def plan_schema(num_scenes: int, limits: PlanLimits, budget: int) -> dict[str, Any]:
    """Title plus exactly `num_scenes` scenes of narration and image prompt."""
    title, narration, prompt = scene_lengths(num_scenes, limits, budget)
    ascii_text = limits.ascii_text
    scene = {
        "type": "object",
        "properties": {
            "narration": _string(narration, ascii_text),
            "image_prompt": _string(prompt, ascii_text),
        },
        "required": ["narration", "image_prompt"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "title": _string(title, ascii_text),
            "scenes": {
                "type": "array",
                "items": scene,
                "minItems": num_scenes,
                "maxItems": num_scenes,
            },
        },
        "required": ["title", "scenes"],
        "additionalProperties": False,
    }


def plan_messages(brief: str, num_scenes: int) -> list[tuple[str, str]]:
    """(role, content) chat turns asking for the storyboard."""
    system = (
        "You write storyboards as JSON: a short title and exactly "
        f"{num_scenes} scenes. Each scene has one or two sentences of narration "
        "read aloud, and a concise visual prompt for an illustration."
    )
    user = f"Brief: {brief}\nWrite {num_scenes} scenes."
    return [("system", system), ("user", user)]


def parse_plan(text: str, num_scenes: int, limits: PlanLimits) -> PlanDraft:
    """The validated plan; PlanInvalid names what is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanInvalid(f"plan is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(raw, dict):
        raise PlanInvalid("plan is not a JSON object")
    title = _clean(raw.get("title"), "title", limits.title_chars)
    scenes = raw.get("scenes")
    if not isinstance(scenes, list) or len(scenes) != num_scenes:
        got = len(scenes) if isinstance(scenes, list) else type(scenes).__name__
        raise PlanInvalid(f"plan has {got} scenes, expected {num_scenes}")
    drafts = []
    for i, scene in enumerate(scenes):
        if not isinstance(scene, dict):
            raise PlanInvalid(f"scene {i} is not an object")
        drafts.append(
            SceneDraft(
                narration=_clean(
                    scene.get("narration"),
                    f"scene {i} narration",
                    limits.narration_chars,
                ),
                image_prompt=_clean(
                    scene.get("image_prompt"),
                    f"scene {i} image_prompt",
                    limits.image_prompt_chars,
                ),
            )
        )
    return PlanDraft(title=title, scenes=tuple(drafts))


def _clean(value: object, what: str, max_chars: int) -> str:
    """Collapsed whitespace; must be non-empty, bounded and contain a word."""
    if not isinstance(value, str):
        raise PlanInvalid(f"{what} is not a string")
    text = " ".join(value.split())
    if not any(c.isalnum() for c in text):
        raise PlanInvalid(f"{what} has no letters or digits ({value[:40]!r})")
    if len(text) > max_chars:
        raise PlanInvalid(f"{what} is longer than {max_chars} characters")
    return text
