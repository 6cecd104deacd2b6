"""The image application's args: validated at build time, paths anchored."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from deployments.image import resolve_config
from deployments.image.config import ImageAppConfig
from tests.helpers import ROOT


def _image_args(name: str = "serve_config.yaml") -> dict:
    raw = yaml.safe_load((ROOT / name).read_text())
    (image,) = [a for a in raw["applications"] if a["name"] == "image"]
    return image["args"]


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.gpu.yaml"])
def test_both_profiles_validate(name: str) -> None:
    config = ImageAppConfig.model_validate(_image_args(name))
    assert config.engine.batching.max_batch_size >= 1


def test_relative_paths_are_anchored_to_the_project() -> None:
    engine = resolve_config(_image_args()).engine
    assert (
        engine.model == str(ROOT / "models/demo/image")
        or not (ROOT / "models/demo/image").exists()
    )
    assert all(lora.name for lora in engine.loras)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"max_batch": 4}, "max_batch"),
        ({"default_scheduler": "warp"}, "default_scheduler"),
        ({"batching": {"max_batch_size": 0}}, "batching.max_batch_size"),
        ({"limits": {"min_size": 512, "max_size": 256}}, "min_size"),
        ({"loras": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}, "unique"),
        ({"memory": {"vae_tilling": True}}, "vae_tilling"),
    ],
)
def test_bad_engine_args_fail_fast_naming_them(patch: dict, match: str) -> None:
    args = _image_args()
    args["engine"] = {**args["engine"], **patch}
    with pytest.raises(ValidationError, match=match):
        ImageAppConfig.model_validate(args)
