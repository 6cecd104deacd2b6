"""Maestro's Ray Serve deployments: one application per model family.

`deployments.text:build_app` etc. are the `import_path`s of serve_config.yaml;
`deployments.engines` holds the engines, usable without Ray.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_project_path(path: str) -> str:
    """A relative path that exists under the project root becomes absolute.

    Replicas do not share the `serve run` working directory, so config paths
    such as `models/demo/text` are anchored to the project, not the cwd; hub
    ids (`Qwen/Qwen2.5-0.5B-Instruct`) pass through unchanged.
    """
    candidate = PROJECT_ROOT / path
    return (
        str(candidate) if not Path(path).is_absolute() and candidate.exists() else path
    )
