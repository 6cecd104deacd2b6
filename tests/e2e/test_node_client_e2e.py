"""End to end: the Node/TypeScript client (clients/node) against the session's stack.

Runs the client's own tests with Node's test runner over the built JS: an
in-process fake server (what every call sends) and the live stack (text,
image, speech, Compose, a deadline, an abort, a bad input, the README
example). `make test` installs and builds the client first (`make node-client`).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from maestro import MaestroClient, envs
from tests.helpers.paths import ROOT
from tests.helpers.serve_run import ServeRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE_CLIENT = ROOT / "clients" / "node"
BUILT_TESTS = NODE_CLIENT / "dist" / "test"
READY_S = 180
RUN_S = 240


def test_node_client_against_the_stack(stack: ServeRun) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Node.js 20+ runs clients/node's tests)")
    if not (BUILT_TESTS / "e2e.test.js").exists():
        built = BUILT_TESTS.relative_to(ROOT)
        pytest.fail(f"{built} is not built; run: make node-client")
    with MaestroClient(stack.target, timeout=10) as client:
        client.wait_until_serving(READY_S)  # every family, studio included
    env = {**os.environ, envs.MAESTRO_TARGET.name: stack.target}
    run = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(BUILT_TESTS)],
        cwd=NODE_CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_S,
    )
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if line.startswith("# ")]
    print("\n".join(line for line in summary if "Subtest" not in line))
    assert run.returncode == 0, (
        f"node --test failed:\n{output}\n--- serve log (tail) ---\n"
        f"{stack.log_tail(1500)}"
    )
    # every test ran: none failed, and the live suite was not skipped
    assert "# fail 0" in output and "# SKIP" not in output, output
