"""Docs follow the code: every config field is described, README tables are real.

Like vLLM's config docstring check: a field without a `description` is a knob
nobody can find, and a README table row naming a key that no config model has
is a knob that silently does nothing (pydantic's `extra="forbid"` would refuse
it at start).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from deployments.image.config import ImageAppConfig
from deployments.studio.config import StudioAppConfig
from deployments.text.config import TextAppConfig
from deployments.voice.config import VoiceAppConfig
from observability.config import ObservabilityConfig

ROOT = Path(__file__).resolve().parents[2]
ROOT_MODELS: tuple[type[BaseModel], ...] = (
    TextAppConfig,
    ImageAppConfig,
    VoiceAppConfig,
    StudioAppConfig,
    ObservabilityConfig,
)


def _nested_models(annotation: object) -> list[type[BaseModel]]:
    """The BaseModel classes inside an annotation (X, X | None, tuple[X, ...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, str | None]:
    """Every dotted field path under `model` and its description."""
    found: dict[str, str | None] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        found[path] = info.description
        for nested in _nested_models(info.annotation):
            found.update(_fields(nested, f"{path}."))
    return found


def _all_fields() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for model in ROOT_MODELS:
        found.update({f"{model.__name__}.{p}": d for p, d in _fields(model).items()})
    return found


def test_every_config_field_has_a_description() -> None:
    fields = _all_fields()
    assert len(fields) > 60  # the walk reached the nested engine configs
    missing = sorted(path for path, doc in fields.items() if not (doc or "").strip())
    assert missing == [], f"config fields without a description: {missing}"


def _readme_table_keys(text: str) -> list[str]:
    """Keys in the first column of every README table headed `| key | ...`."""
    keys: list[str] = []
    in_table = False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == "key":
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if in_table and not set(cells[0]) <= set("-: "):
            keys += re.findall(r"`([^`]+)`", cells[0])
    return keys


def test_readme_config_tables_name_only_keys_that_exist() -> None:
    keys = _readme_table_keys((ROOT / "README.md").read_text())
    assert len(keys) > 20  # the parser found the tables
    paths = {p.split(".", 1)[1] for p in _all_fields()}
    unknown = [
        key for key in keys if not any(p == key or p.endswith(f".{key}") for p in paths)
    ]
    assert unknown == [], f"README config tables name unknown keys: {unknown}"
