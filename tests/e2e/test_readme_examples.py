"""Every README block marked `<!-- readme-test: NAME -->` runs, as pasted,
against the session's stack.

What the test changes, and only that: the ports (the stack's free ones for
9000 and 8000, also as MAESTRO_TARGET, which the CLI would default to
127.0.0.1:9000), HOME (a folder whose `.maestro/api_key` holds the session's
key, so `$(cat ~/.maestro/api_key)` and the clients find it), `.venv/bin/`
is the session's venv, and `npx @bufbuild/buf` runs the buf the Makefile
pinned in `.tools/` (npx would fetch the same package). Each block must exit
0 and show what it promises.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.serve_run import ServeRun

BLOCK = re.compile(
    r"<!-- readme-test: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```",
    re.S,
)
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
EXAMPLES = {
    m["name"]: (m["lang"], m["code"])
    for m in BLOCK.finditer((ROOT / "README.md").read_text())
}


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


# What each example must show beyond exiting 0: (stdout, its folder) -> ok.
CHECKS: dict[str, Callable[[str, Path], bool]] = {
    "quickstart": lambda out, cwd: (
        "SERVING" in out
        and (cwd / "out.png").read_bytes()[:4] == b"\x89PNG"
        and _wav_seconds(cwd / "hello.wav") > 0
        and (cwd / "board" / "index.html").exists()
    ),
    "buf-curl": lambda out, _: '"finishReason"' in out and '"usage"' in out,
    "buf-generate": lambda out, _: "text.ts" in out,
    # `print(reply.text, reply.finish_reason, completion_tokens)`: the enum
    # prints as its number (1 stop, 2 length), then the count (<= 16).
    "python": lambda out, _: re.search(r" [12] ([1-9]|1[0-6])\n", out) is not None,
    "node": lambda out, _: "completion tokens, request " in out,
    "curl": lambda out, cwd: (
        "data: [DONE]" in out
        and '"object":"list"' in out
        and _wav_seconds(cwd / "hello.wav") > 0
    ),
    "openai-python": lambda out, cwd: (
        (cwd / "lighthouse.png").read_bytes()[:4] == b"\x89PNG"
        and _wav_seconds(cwd / "hello.wav") > 0
    ),
}


def test_every_marked_example_is_checked() -> None:
    assert set(EXAMPLES) == set(CHECKS)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    (home / ".maestro").mkdir()
    (home / ".maestro" / "api_key").write_text(os.environ["MAESTRO_API_KEY"] + "\n")
    return home


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_readme_example_runs(
    name: str, stack: ServeRun, home: Path, tmp_path: Path
) -> None:
    lang, code = EXAMPLES[name]
    code = code.replace("127.0.0.1:9000", stack.target).replace(
        "127.0.0.1:8000", f"127.0.0.1:{stack.http_port}"
    )
    if "npx @bufbuild/buf" in code:
        if not BUF.exists():
            pytest.skip("buf is not installed (make buf-lint installs it)")
        code = code.replace("npx @bufbuild/buf", str(BUF))
    if name == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    code = code.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    env = {**os.environ, "HOME": str(home), "MAESTRO_TARGET": stack.target}
    env.pop("MAESTRO_API_KEY", None)  # found in ~/.maestro/api_key, as a user's
    env.pop("MAESTRO_API_KEY_FILE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = ["bash", "-euo", "pipefail", "-c", code]
    if lang == "python":
        command = [sys.executable, "-c", code]
    # The repository's own paths (buf.yaml, clients/node) resolve from ROOT;
    # what an example writes lands in its own folder.
    cwd = ROOT if name in ("buf-generate", "node") else tmp_path
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert CHECKS[name](result.stdout, cwd), f"{name} printed:\n{result.stdout}"
