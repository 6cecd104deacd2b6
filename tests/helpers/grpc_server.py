"""gRPC servicers served in-process on a free port: the client's own tier, no Ray."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

from deployments.launch import free_port

__all__ = ["in_process_server"]

AddServicer = Callable[[Any, grpc.Server], None]


@contextmanager
def in_process_server(servicer: Any, *adders: AddServicer) -> Iterator[str]:
    """`servicer` registered by each `add_*Servicer_to_server`; yields its target."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for add in adders:
        add(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)
