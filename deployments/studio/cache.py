"""A seeded Compose served once: the studio's own response cache.

A seeded Compose is a function of its request, the studio's plan limits and
the models its child calls use, so its whole event stream can be kept. The
models are the families' (the studio holds none): before a lookup it asks
each family's ListModels, concurrently and bounded by `probe_timeout_s`, for
the `identity` of the model the Compose names (or the family's default) —
a digest of that model's checkpoint fingerprint, engine settings and engine
version (`Engine.identity`). A family that does not answer, or a model not
loaded yet (no identity), means no Compose-level entry for this call; its
child calls still use their families' caches.

A replay sends the stored events in their order (plan, scenes, done) with
`done` re-stamped: this call's trace id and one `total` timing, the replay's
own. Only a complete run with no scene error is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from google.protobuf.json_format import MessageToDict

from deployments.cache.config import CacheConfig
from deployments.cache.responses import ResponseCache
from deployments.studio.children import Handle, InFlight, call_child
from deployments.studio.config import PlanLimits
from maestro.models_client import default_models
from maestro.v1 import models_pb2, studio_pb2
from observability import tracing

__all__ = ["ComposeCache"]

logger = logging.getLogger("maestro.studio")
Event = studio_pb2.ComposeResponse


class ComposeCache:
    """The Compose entries of one studio replica (the store may be shared)."""

    def __init__(
        self,
        config: CacheConfig,
        families: Mapping[str, Handle],
        limits: PlanLimits,
        probe_timeout_s: float,
    ) -> None:
        self.responses = ResponseCache("studio", config)
        self.families, self.limits = dict(families), limits
        self.probe_timeout_s = probe_timeout_s

    async def key(self, request: studio_pb2.ComposeRequest) -> str | None:
        """The request's key; None when it is not kept (cache off or
        bypassed, unseeded, or a family's model identity is unknown)."""
        if not request.HasField("seed") or not self.responses.wanted():
            return None
        identities = await asyncio.gather(
            *(
                self._identity(family, handle, getattr(request, family).model)
                for family, handle in self.families.items()
            )
        )
        if not all(identities):
            return None
        form = MessageToDict(request, preserving_proto_field_name=True)
        form.pop("request_id", None)
        form["num_scenes"] = request.num_scenes or self.limits.default_scenes
        return self.responses.form_key(
            "Compose",
            {
                "request": form,
                "plan": self.limits.model_dump(mode="json"),
                "models": dict(zip(self.families, identities, strict=True)),
            },
        )

    async def stream(
        self,
        key: str | None,
        request_id: str,
        produce: Callable[[], AsyncIterator[Event]],
    ) -> AsyncIterator[Event]:
        """The stored events (re-stamped), else `produce()`'s (kept)."""
        began, produced = time.monotonic(), False

        def run() -> AsyncIterator[Event]:
            nonlocal produced
            produced = True
            return produce()

        events = self.responses.stream(
            key, Event, request_id, run, keep=lambda _: True, condense=_complete
        )
        async for event in events:
            if not produced and event.WhichOneof("event") == "done":
                done = event.done
                done.trace_id = tracing.trace_id_of(tracing.current_span())
                del done.timings[:]
                done.timings.add(stage="total", seconds=time.monotonic() - began)
            yield event

    async def _identity(self, family: str, handle: Handle, model: str) -> str:
        """The identity of `model` (empty: the default) in `family`, or ""."""
        try:
            answer = await asyncio.wait_for(
                call_child(
                    handle, "ListModels", models_pb2.ListModelsRequest(), InFlight()
                ),
                self.probe_timeout_s,
            )
        except Exception as exc:  # not answering: no Compose entry this time
            logger.info("compose cache: %s ListModels failed: %s", family, exc)
            return ""
        rows = list(answer.models)
        chosen = [m for m in rows if m.id == model] if model else default_models(rows)
        return chosen[0].stats.get("identity", "") if chosen else ""


def _complete(events: list[Event]) -> list[Event] | None:
    """The events to store: a whole run (done last) without scene errors,
    its `done` without the run's own timings and trace id."""
    if not events or events[-1].WhichOneof("event") != "done":
        return None
    if any(e.WhichOneof("event") == "scene_error" for e in events):
        return None
    done = Event()
    done.CopyFrom(events[-1])
    done.done.trace_id = ""
    del done.done.timings[:]
    return [*events[:-1], done]
