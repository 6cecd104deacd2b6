"""The studio: StudioService.Compose chaining text → image ∥ voice, app `studio`.

No model lives here; the deployment calls the family deployments through
`DeploymentHandle`s (`deployments.studio.compose.Studio` is the logic, usable
with fake handles and without Ray).
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.studio.compose import Studio
from deployments.studio.config import StudioAppConfig
from deployments.studio.deployment import StudioDeployment

__all__ = ["Studio", "StudioAppConfig", "StudioDeployment", "build_app"]


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Application builder for serve_config.yaml; validates `args` first."""
    config = StudioAppConfig.model_validate(args or {})
    return StudioDeployment.bind(config.model_dump())
