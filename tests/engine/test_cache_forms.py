"""The cache keys real engines make: defaults filled in, identity included.

The image and voice engines run on the demo checkpoints (CPU); a copy of the
voice checkpoint is changed on disk to show that a reloaded model whose files
changed gets new keys, and the image engine's LoRA weights are part of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deployments.cache.keys import cache_key
from deployments.engines.image.config import ImageEngineConfig
from deployments.engines.image.engine import ImageEngine
from deployments.engines.image.types import ImageRequest, LoraChoice
from deployments.engines.voice.config import VoiceEngineConfig
from deployments.engines.voice.engine import VoiceEngine
from deployments.engines.voice.types import SpeechRequest
from models.image_demo import DEMO_LORA, LORA_DIR

pytestmark = pytest.mark.slow


def _key(form: object) -> str:
    assert isinstance(form, dict)
    return cache_key(family="f", rpc="R", scope="", form=form)


async def test_image_forms_fill_defaults_and_name_the_adapters(
    demo_models: Path,
) -> None:
    model = demo_models / "image"
    engine = ImageEngine(
        ImageEngineConfig.model_validate(
            {
                "model": str(model),
                "device": "cpu",
                "loras": [
                    {"name": DEMO_LORA, "path": str(model / LORA_DIR / DEMO_LORA)}
                ],
            }
        )
    )
    await engine.start()
    try:
        limits = engine.limits
        assert limits is not None
        plain = ImageRequest(prompt="a kite", seed=3, request_id="one")
        explicit = ImageRequest(
            prompt="a kite",
            seed=3,
            width=limits.default_width,
            height=limits.default_height,
            steps=limits.default_steps,
            scheduler=limits.default_scheduler,
            format="png",
            num_images=1,
            preview_every=2,  # progress only: not part of the result
            request_id="two",
        )
        assert _key(engine.cache_form(plain)) == _key(engine.cache_form(explicit))
        assert engine.cache_form(ImageRequest(prompt="a kite")) is None  # unseeded
        styled = [
            _key(engine.cache_form(ImageRequest("a kite", seed=3, loras=(lora,))))
            for lora in (LoraChoice(DEMO_LORA, 0.5), LoraChoice(DEMO_LORA, 0.8))
        ]
        assert len({*styled, _key(engine.cache_form(plain))}) == 3
        lora = (LoraChoice(DEMO_LORA, 0.5),)
        form = engine.cache_form(ImageRequest("a kite", seed=3, loras=lora))
        assert form is not None and form["adapters"][DEMO_LORA].startswith("files:")
    finally:
        await engine.shutdown()


async def test_a_reloaded_voice_with_changed_files_gets_new_keys(
    demo_models: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "voice"
    shutil.copytree(demo_models / "voice", copy)
    request = SpeechRequest(text="Hello there.", seed=1)

    async def key_of(req: SpeechRequest) -> str | None:
        engine = VoiceEngine(VoiceEngineConfig(model=str(copy), model_id="v"))
        await engine.start()
        try:
            form = engine.cache_form(req)
            assert engine.limits is not None
            voice = engine.limits.voices[0]
            explicit = engine.cache_form(
                SpeechRequest(text=req.text, seed=1, voice=voice, speaking_rate=1.0)
            )
        finally:
            await engine.shutdown()
        if form is None:
            return None
        assert _key(form) == _key(explicit)  # defaults filled in
        return _key(form)

    before = await key_of(request)
    assert before == await key_of(request)  # the same files: the same key
    weights = next(p for p in copy.rglob("*.safetensors"))
    os.utime(weights, ns=(1, 1))  # as if rewritten
    assert before != await key_of(request)
    assert await key_of(SpeechRequest(text="Hello there.")) is None
