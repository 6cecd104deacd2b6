"""Two (or more) real voice replicas behind Ray's gRPC proxy, auth on.

The Serve-tier tests of state that replicas share (quotas, the response
cache) need the same stack: this process's own local Ray, the demo VITS
engine, `MAESTRO_AUTH` set before Ray starts (the replicas inherit it), and
the voice application's args from serve_config.yaml with the test's changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml
from ray import serve

from deployments.auth.config import AuthSettings
from deployments.voice import VoiceDeployment, resolve_config
from maestro import MaestroClient, envs
from tests.helpers.paths import ROOT
from tests.helpers.serve_stack import FAST_WARNINGS, local_serve

__all__ = ["voice_replicas"]


@contextmanager
def voice_replicas(
    auth: AuthSettings,
    *,
    operator_key: str,
    args: Mapping[str, Any] | None = None,
    replicas: int = 2,
    http_port: int | None = None,
) -> Iterator[str]:
    """Yields the gRPC target once every replica is SERVING; `args` are
    merged over the demo voice application's (e.g. a `cache` block). The
    OpenAI-compatible speech endpoint is /v1/audio/speech on `http_port`."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    (voice,) = [a for a in config["applications"] if a["name"] == "voice"]
    env = {**FAST_WARNINGS, envs.MAESTRO_AUTH.name: auth.to_env()}
    with local_serve(num_cpus=2, num_gpus=0, env=env, http_port=http_port) as target:
        app = VoiceDeployment.options(
            num_replicas=replicas, ray_actor_options={"num_cpus": 0.5}
        ).bind(resolve_config({**voice["args"], **(args or {})}).model_dump())
        serve.run(app, name="voice", route_prefix="/v1/audio")
        with MaestroClient(target, timeout=30, api_key=operator_key) as client:
            client.wait_until_serving(180, ["voice"])
        yield target
