"""The check every RPC passes: who is calling, may they, and have they quota left.

`Gate` lives once per replica process (`gate()`), built from the settings the
launcher passed in `MAESTRO_AUTH`. The ingress layer calls, per RPC:

    caller = gate.authenticate(metadata)          # UNAUTHENTICATED
    gate.authorize(caller, family, rpc)           # PERMISSION_DENIED
    ticket = await gate.admit(caller, family, cost, direct=True)  # quotas
    ...                                           # the RPC runs
    await gate.settle(ticket, used)               # frees its slot, charges usage

Calls the studio makes through DeploymentHandles on a caller's behalf carry
that caller's key *name* (checked once, at the studio): they are charged to
the same key's family budgets, and not counted again as requests.

When the shared quota store does not answer, the call is served unmetered,
logged and counted (`maestro_quota_store_errors`): a Redis outage must not
take every family down with it.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from deployments.auth.config import ADMIN, AuthSettings, KeyEntry
from deployments.auth.keys import lookup
from deployments.auth.quotas import QuotaStore, StoreUnavailable, open_store
from deployments.errors import PermissionDenied, QuotaExceeded, Unauthenticated
from observability import metrics

__all__ = ["AUTH_HEADER", "Gate", "Ticket", "gate"]

logger = logging.getLogger("maestro.auth")

AUTH_HEADER = "authorization"
# The family budget each family's calls draw on (studio has none of its own:
# its child calls are charged to the families).
BUDGETS = {
    "text": "text_tokens_per_minute",
    "image": "image_pixel_steps_per_minute",
    "voice": "voice_chars_per_minute",
}
# Concurrency has no refill time; a client backs off this long and retries.
CONCURRENCY_RETRY_S = 1.0
# Admin RPCs (model management, cache) need the explicit `admin` scope.
ADMIN_RPCS = frozenset(
    {
        "LoadModel",
        "UnloadModel",
        "LoadAdapter",
        "UnloadAdapter",
        "CacheStats",
        "ClearCache",
    }
)


@dataclass
class Ticket:
    """One admitted call: what to release and charge when it ends."""

    key: KeyEntry | None
    family: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    holds_slot: bool = False


class Gate:
    def __init__(self, settings: AuthSettings, store: QuotaStore | None = None):
        self.settings = settings
        self.enabled = settings.enabled
        self._by_name = {entry.name: entry for entry in settings.keys}
        self.store = store if store is not None else open_store(settings.quota_store)
        self._store_failed_at = 0.0

    # Who ------------------------------------------------------------------

    def authenticate(self, metadata: Iterable[tuple[str, str]]) -> KeyEntry | None:
        """The key behind `authorization: Bearer <key>`; None when auth is off."""
        if not self.enabled:
            return None
        header = ""
        for name, value in metadata:
            if name.lower() == AUTH_HEADER:
                header = value if isinstance(value, str) else ""
                break
        scheme, _, key = header.strip().partition(" ")
        if not header or scheme.lower() != "bearer" or not key.strip():
            metrics.inc("maestro_auth_failures", reason="missing", key="")
            raise Unauthenticated(
                "missing API key: send `authorization: Bearer <key>` (gRPC "
                "metadata or HTTP header) "
                "(the Maestro clients read MAESTRO_API_KEY or ~/.maestro/api_key)"
            )
        entry = lookup(key.strip(), self.settings.keys)
        if entry is None:
            metrics.inc("maestro_auth_failures", reason="unknown", key="")
            raise Unauthenticated("invalid API key")
        return entry

    def caller(self, name: str) -> KeyEntry | None:
        """The key a handle call was made for (by name; checked upstream)."""
        return self._by_name.get(name) if self.enabled and name else None

    # May they -------------------------------------------------------------

    def authorize(self, key: KeyEntry | None, family: str, rpc: str) -> None:
        if key is None:
            return
        scopes = set(key.scopes)
        if rpc in ADMIN_RPCS:
            allowed = ADMIN in scopes
        else:
            allowed = bool({"*", family, f"{family}.{rpc}"} & scopes)
        if not allowed:
            metrics.inc("maestro_auth_failures", reason="scope", key=key.name)
            logger.info(
                "key %s refused %s.%s (scopes %s)", key.name, family, rpc, scopes
            )
            need = ADMIN if rpc in ADMIN_RPCS else f"{family} or {family}.{rpc}"
            raise PermissionDenied(
                f"key {key.name!r} may not call {family}.{rpc}; it needs scope {need}"
            )

    # How much -------------------------------------------------------------

    async def admit(
        self, key: KeyEntry | None, family: str, cost: int, *, direct: bool
    ) -> Ticket:
        """Count the call against `key`'s quotas; raises QuotaExceeded.

        `direct`: a client's own call (counted as a request, holds a slot);
        False for a handle call on its behalf (family budget only).
        """
        ticket = Ticket(key, family)
        if key is None:
            return ticket
        q = key.quotas
        try:
            # The slot first (undone if a later quota refuses), the budget
            # last: a refused call never spends family budget.
            if direct and q.concurrent_requests:
                counter = f"{key.name}:concurrent"
                if not await self.store.acquire(
                    counter, ticket.token, q.concurrent_requests
                ):
                    self._reject(key, "concurrent_requests", q.concurrent_requests)
                    raise QuotaExceeded(
                        quota="concurrent_requests",
                        limit=q.concurrent_requests,
                        retry_after_s=CONCURRENCY_RETRY_S,
                    )
                ticket.holds_slot = True
            try:
                if direct and q.requests_per_minute:
                    await self._take(
                        key, "requests_per_minute", 1, q.requests_per_minute
                    )
                budget = BUDGETS.get(family)
                limit = getattr(q, budget) if budget else None
                if limit:
                    await self._take(key, budget, cost, limit)
            except QuotaExceeded:
                if ticket.holds_slot:
                    await self.store.release(f"{key.name}:concurrent", ticket.token)
                raise
        except StoreUnavailable as exc:
            self._store_down(exc)
        return ticket

    async def settle(self, ticket: Ticket, used: int = 0, refund: int = 0) -> None:
        """The call ended: free its slot; charge usage known only now, and
        give back `refund` of what was taken at admission (a cache hit)."""
        key = ticket.key
        if key is None:
            return
        try:
            if ticket.holds_slot:
                await self.store.release(f"{key.name}:concurrent", ticket.token)
            budget = BUDGETS.get(ticket.family)
            if budget and getattr(key.quotas, budget) and used - refund:
                await self.store.add(f"{key.name}:{budget}", used - refund)
        except StoreUnavailable as exc:
            self._store_down(exc)

    async def _take(self, key: KeyEntry, quota: str, amount: int, limit: int) -> None:
        wait = await self.store.take(f"{key.name}:{quota}", amount, limit)
        if wait > 0:
            self._reject(key, quota, limit)
            raise QuotaExceeded(quota=quota, limit=limit, retry_after_s=wait)

    @staticmethod
    def _reject(key: KeyEntry, quota: str, limit: int) -> None:
        metrics.inc("maestro_quota_rejections", key=key.name, quota=quota)
        logger.info("key %s over quota %s (%d)", key.name, quota, limit)

    def _store_down(self, exc: Exception) -> None:
        metrics.inc("maestro_quota_store_errors")
        now = time.monotonic()
        if now - self._store_failed_at > 30:  # one log line per 30 s outage
            logger.warning("quota store unavailable, serving unmetered: %s", exc)
        self._store_failed_at = now


@functools.cache
def gate() -> Gate:
    """This process's gate, from MAESTRO_AUTH (auth off when unset)."""
    settings = AuthSettings.from_env()
    if not settings.enabled:
        logger.warning("auth is off: every caller may use every model")
    return Gate(settings)
