"""What the launcher does about processes and ports around a stack's life.

Before start: every port the stack listens on must be free; if one is not,
start fails at once naming the port and the process holding it (instead of
HAProxy's "Some protocols failed to start their listeners" minutes later).
An HAProxy that outlived an earlier Maestro stack (Ray Serve reloads HAProxy
with `-sf` while it tears applications down, and the last one can be left
behind, its parent gone) is recognised by its config path and stopped.

After stop: the HAProxy processes of this stack's Ray node are stopped too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Mapping

import psutil

__all__ = [
    "PortsTaken",
    "check_ports_free",
    "port_holder",
    "stop_haproxy",
]

# Ray Serve's HAProxy config lives under this folder, one subfolder per node
# (RAY_SERVE_HAPROXY_CONFIG_FILE_LOC's default).
HAPROXY_CONFIG_DIR = "/tmp/haproxy-serve/"


class PortsTaken(RuntimeError):
    """A port the stack needs is in use; the message names who holds it."""


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> psutil.Process | None:
    """The process listening on `port`, when this user may see it."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN":
            if conn.pid:
                try:
                    return psutil.Process(conn.pid)
                except psutil.NoSuchProcess:
                    return None
    return None


def _describe(proc: psutil.Process | None) -> str:
    if proc is None:
        return "a process this user cannot see"
    try:
        return f"pid {proc.pid} ({' '.join(proc.cmdline())[:120]})"
    except psutil.Error:
        return f"pid {proc.pid}"


def _is_orphaned_haproxy(proc: psutil.Process) -> bool:
    try:
        cmdline = " ".join(proc.cmdline())
        return (
            proc.name() == "haproxy"
            and proc.ppid() == 1
            and HAPROXY_CONFIG_DIR in cmdline
        )
    except psutil.Error:
        return False


def check_ports_free(ports: Mapping[str, int], host: str = "127.0.0.1") -> list[str]:
    """Raise PortsTaken naming each taken port's holder; returns notes on
    orphaned HAProxy processes it stopped to free a port."""
    notes, taken = [], []
    for what, port in ports.items():
        if _free(host, port):
            continue
        holder = port_holder(port)
        if holder is not None and _is_orphaned_haproxy(holder):
            notes.append(
                f"stopped HAProxy pid {holder.pid} left behind by an earlier "
                f"stack on port {port}"
            )
            _terminate([holder])
            if _free(host, port):
                continue
        taken.append(f"{what} port {port} is in use by {_describe(holder)}")
    if taken:
        raise PortsTaken(
            "cannot start: "
            + "; ".join(taken)
            + ". Stop that process or choose other ports in the config."
        )
    return notes


def stop_haproxy(node_id: str) -> int:
    """Stop the HAProxy processes of one Ray node; returns how many there were."""
    marker = f"{HAPROXY_CONFIG_DIR}{node_id}/"
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        if proc.info.get("name") == "haproxy" and marker in cmdline:
            found.append(proc)
    _terminate(found)
    return len(found)


def _terminate(procs: Iterable[psutil.Process], grace_s: float = 5.0) -> None:
    procs = list(procs)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    if alive:
        time.sleep(0.1)
