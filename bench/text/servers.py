"""The servers the text benchmark compares: vLLM's OpenAI server and Maestro."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.lib.log import log
from bench.lib.probes import Probe, alive, family_serving, http_ok, wait_until_serving
from bench.lib.procs import Server, spawn, stop, venv_env
from bench.lib.serve_config import app_config, base_config
from bench.lib.stack import start_stack
from bench.text.prompts import MODEL_DIR, MODEL_ID
from deployments.launch import free_port
from maestro import envs

# Set by --messages-per-second: overrides args.stream of the text application.
STREAM_OVERRIDES: dict[str, float] = {}
PROBES: dict[str, Probe] = {
    "vllm": http_ok("/v1/models"),
    "maestro": family_serving("text"),
}


def start_vllm(workdir: Path) -> Server:
    """vLLM's OpenAI server with Maestro's engine settings, request logs off."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(MODEL_DIR),
        "--served-model-name",
        MODEL_ID,
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--max-num-seqs",
        "128",
        "--seed",
        "0",
        "--structured-outputs-config.backend",
        "guidance",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--uvicorn-log-level",
        "warning",
        "--disable-uvicorn-access-log",
    ]
    env = {**venv_env(), envs.VLLM_CPU_KVCACHE_SPACE.name: "1"}
    proc, log_path = spawn("vllm", cmd, env, workdir)
    return Server("vllm", proc, f"127.0.0.1:{port}", log_path)


def start_maestro(workdir: Path) -> Server:
    """`serve run` on serve_config.yaml as it is (STREAM_OVERRIDES applied)."""
    config = base_config()
    if STREAM_OVERRIDES:
        app_config(config, "text")["args"]["stream"].update(STREAM_OVERRIDES)
    return start_stack(config, workdir, "maestro")


def is_alive(server: Server) -> bool:
    """The server is up and its readiness probe (by its name) still answers."""
    return alive(server, PROBES.get(server.name, PROBES["maestro"]))


@contextmanager
def serving(name: str, workdir: Path) -> Iterator[Server]:
    """The named side, started and ready; stopped on exit whatever happens."""
    start = start_vllm if name == "vllm" else start_maestro
    log(f"{name}: starting")
    server = start(workdir)
    try:
        took = wait_until_serving(server, PROBES[name])
        log(f"{name}: ready on {server.target} in {took:.0f} s")
        yield server
    finally:
        log(f"{name}: stopping")
        stop(server)
