"""Maestro's Python client: typed sync/async clients over the generated stubs.

from maestro import MaestroClient
with MaestroClient("127.0.0.1:9000") as client:
    for chunk in client.stream_text("Once upon a time", max_tokens=32):
        print(chunk.text, end="")

client.wait_until_serving(timeout=120, families=["text"]) blocks until the
text application answers SERVING (TimeoutError naming what is not).
"""

from maestro.client import AsyncMaestroClient, MaestroClient
from maestro.errors import MaestroRpcError
from maestro.retry import RetryPolicy
from maestro.routing import FAMILIES, routed_channel

__all__ = [
    "FAMILIES",
    "AsyncMaestroClient",
    "MaestroClient",
    "MaestroRpcError",
    "RetryPolicy",
    "routed_channel",
]
