"""The stack's processes: finding them by title, and sampling one's RSS."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psutil

from bench.lib.log import log
from bench.lib.procs import Server, session_pids
from bench.reliability.settings import MIB, RSS_EVERY_S


def stack_processes(server: Server) -> Iterator[psutil.Process]:
    """The stack's descendants, then anything else left in its session."""
    seen: set[int] = set()
    try:
        children = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for proc in children:
        seen.add(proc.pid)
        yield proc
    for pid in session_pids(server.proc.pid):
        if pid not in seen:
            try:
                yield psutil.Process(pid)
            except psutil.Error:
                continue


def find_processes(server: Server, title: str) -> list[psutil.Process]:
    """Live stack processes whose title (cmdline or name) holds `title`."""
    found = []
    for proc in stack_processes(server):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if title in " ".join(proc.cmdline()) or title == proc.name():
                found.append(proc)
        except psutil.Error:
            continue
    return found


def find_process(server: Server, title: str) -> psutil.Process:
    procs = find_processes(server, title)
    if not procs:
        raise RuntimeError(f"no process titled {title!r} under the stack")
    if len(procs) > 1:
        log(f"{len(procs)} processes titled {title!r}; using pid {procs[0].pid}")
    return procs[0]


class PeakRss:
    """Samples one process's RSS every `every_s` in a thread: peak and mean."""

    def __init__(self, proc: psutil.Process, every_s: float = RSS_EVERY_S) -> None:
        self.proc, self.every_s = proc, every_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.every_s)

    @property
    def peak_mib(self) -> float | None:
        return round(max(self.samples) / MIB, 1) if self.samples else None
