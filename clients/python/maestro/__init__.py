"""Maestro's Python client: typed sync/async clients over the generated stubs.

from maestro import MaestroClient
with MaestroClient("127.0.0.1:9000") as client:
    for chunk in client.stream_text("Once upon a time", max_tokens=32):
        print(chunk.text, end="")
"""

from maestro.client import (
    FAMILIES,
    AsyncMaestroClient,
    MaestroClient,
    MaestroRpcError,
    routed_channel,
)
from maestro.retry import RetryPolicy

__all__ = [
    "FAMILIES",
    "AsyncMaestroClient",
    "MaestroClient",
    "MaestroRpcError",
    "RetryPolicy",
    "routed_channel",
]
