"""Arguments of the studio application (the `args:` block in serve_config.yaml).

The studio holds no model: its settings are where the family deployments live
and the bounds of a storyboard. The bounds shape the plan's JSON schema, so
they also bound how many tokens the text family spends on a plan.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.cache.config import CacheConfig

__all__ = ["FamilyRef", "PlanLimits", "StudioAppConfig"]


class FamilyRef(BaseModel):
    """A family deployment the studio calls through a DeploymentHandle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(description="Serve application name, e.g. `text`.")
    deployment: str = Field(description="Deployment name, e.g. `Text`.")


class PlanLimits(BaseModel):
    """Bounds of a storyboard; the plan schema's lengths come from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_scenes: int = Field(8, ge=1, le=32, description="Most scenes per request.")
    default_scenes: int = Field(4, ge=1, description="Scenes when num_scenes is 0.")
    max_brief_chars: int = Field(2000, ge=1, description="Longest brief accepted.")
    max_style_chars: int = Field(300, ge=0, description="Longest style text.")
    title_chars: int = Field(48, ge=1, description="Longest plan title.")
    narration_chars: int = Field(160, ge=8, description="Longest scene narration.")
    image_prompt_chars: int = Field(100, ge=8, description="Longest image prompt.")
    max_tokens: int = Field(
        1600,
        ge=64,
        description="Token budget of a plan (keep it under the text model's "
        "context window minus the ~200-token prompt). When many scenes are asked "
        "for, narration and prompt lengths shrink so the longest plan fits; a "
        "request's text.max_tokens replaces it.",
    )
    ascii_text: bool = Field(
        True,
        description="Plan strings in printable ASCII without quotes or "
        "backslashes: with a byte-level tokenizer a character then costs at most "
        "one token, so the budget holds even for a random model. Turn off for "
        "briefs in other scripts on a real model.",
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> PlanLimits:
        if self.default_scenes > self.max_scenes:
            raise ValueError(
                f"default_scenes ({self.default_scenes}) > max_scenes "
                f"({self.max_scenes})"
            )
        return self


class StudioAppConfig(BaseModel):
    """Validated when the application is built: unknown keys fail fast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: FamilyRef = Field(
        default=FamilyRef(app="text", deployment="Text"),
        description="Writes the plan (structured output).",
    )
    image: FamilyRef = Field(
        default=FamilyRef(app="image", deployment="Image"),
        description="Draws each scene.",
    )
    voice: FamilyRef = Field(
        default=FamilyRef(app="voice", deployment="Voice"),
        description="Narrates each scene.",
    )
    plan: PlanLimits = Field(default_factory=PlanLimits, description="Bounds.")
    probe_timeout_s: float = Field(
        2.0,
        gt=0,
        description="How long ListModels/Check wait for each family's answer.",
    )
    cache: CacheConfig = Field(
        default_factory=CacheConfig,
        description="Seeded Compose streams served again from a cache (the "
        "same block as a family's); keyed on the request, the plan limits and "
        "the identity of each family's model (deployments/studio/cache.py).",
    )
