"""API keys on the client side: where the key comes from, and the header it rides in.

Every Maestro client finds its key the same way: `MAESTRO_API_KEY`, else the
file `~/.maestro/api_key` (`MAESTRO_API_KEY_FILE` moves it; `make serve`
creates it on first start). It travels as gRPC metadata
`authorization: Bearer <key>` on every call.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from maestro import envs
from maestro.routing import MODEL_HEADER, route

__all__ = [
    "AUTH_HEADER",
    "CACHE_HEADER",
    "CACHE_MODES",
    "CallMetadata",
    "auth_metadata",
    "default_api_key",
    "hash_key",
    "new_key",
]

AUTH_HEADER = "authorization"
KEY_PREFIX = "mae_"


def new_key() -> str:
    """A fresh API key: `mae_` + 32 random bytes, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What servers store instead of the key: its hex SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()


def default_api_key() -> str | None:
    """MAESTRO_API_KEY, else the key file's content, else None."""
    if key := envs.MAESTRO_API_KEY.get():
        return str(key).strip()
    path = Path(envs.MAESTRO_API_KEY_FILE.get()).expanduser()
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return ((AUTH_HEADER, f"Bearer {api_key}"),) if api_key else ()


# Ray's ingress does not pass gRPC's own grpc-timeout on to the replica, so
# the clients also send the call's timeout: a replica whose engine is still
# loading answers UNAVAILABLE before the deadline instead of letting it pass.
TIMEOUT_HEADER = "x-maestro-timeout-ms"
# A model id longer than this is never a registered one; HAProxy refuses
# oversized headers, so such a call goes without the routing header (and is
# answered NOT_FOUND by whichever replica gets it).
MAX_ROUTED_MODEL_CHARS = 256


def _routable(model: str) -> bool:
    """A model id that may travel as metadata: printable ASCII, short."""
    return (
        0 < len(model) <= MAX_ROUTED_MODEL_CHARS
        and model.isascii()
        and model.isprintable()
    )


# The response cache's directive (every family, one convention): `bypass`
# (neither read nor stored) or `refresh` (not read; the new result is stored).
# Answers say `x-cache: hit|miss` in trailing metadata.
CACHE_HEADER = "x-maestro-cache"
CACHE_MODES = ("", "bypass", "refresh")


class CallMetadata:
    """What every call of a client carries: routing key, API key, timeout,
    and the cache directive (`cache`: "", "bypass" or "refresh")."""

    api_key: str | None = None
    cache: str = ""

    def _metadata(
        self, family: str, timeout: float | None = None, model: str = ""
    ) -> tuple[tuple[str, str], ...]:
        """Routing (`application`; `multiplexed_model_id` when the call names
        a model, so it goes to the replica holding it), key and deadline."""
        extra = () if timeout is None else ((TIMEOUT_HEADER, str(int(timeout * 1000))),)
        if _routable(model):
            extra += ((MODEL_HEADER, model),)
        if self.cache:
            extra += ((CACHE_HEADER, self.cache),)
        return route(family) + auth_metadata(self.api_key) + extra
