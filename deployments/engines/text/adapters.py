"""The text engine's LoRA adapters: vLLM's runtime LoRA loading, by name.

vLLM (CPU and GPU) loads a PEFT-format adapter with `AsyncLLM.add_lora` and
applies it to the requests that carry its `LoRARequest`; at most `max_loras`
distinct adapters run in one step (more wait). Removing one waits until the
requests using it finished, so none switches adapter mid-generation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deployments.engines.adapters import AdapterUsers, name_in_use, not_an_adapter
from deployments.errors import NotFound

__all__ = ["LoraSet"]


class LoraSet:
    """Named adapters of one AsyncLLM and the requests using each."""

    def __init__(self) -> None:
        self._requests: dict[str, Any] = {}  # name -> vllm LoRARequest
        self._users = AdapterUsers()
        self._next_id = 1  # vLLM ids start at 1
        self.load_seconds: dict[str, float] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._requests)

    async def add(self, llm: Any, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        if name in self._requests:
            raise name_in_use(name)
        request = LoRARequest(name, self._next_id, path)
        began = time.monotonic()
        try:
            await llm.add_lora(request)
        except (ValueError, OSError) as exc:  # not a PEFT LoRA for this model
            raise not_an_adapter(path, exc) from None
        self._next_id += 1
        self._requests[name] = request
        self.load_seconds[name] = time.monotonic() - began

    async def remove(self, llm: Any, name: str) -> None:
        request = self._requests.pop(name, None)  # new requests: NOT_FOUND
        if request is None:
            raise NotFound(what="adapter", name=name, available=list(self._requests))
        await self._users.drained(name)
        self.load_seconds.pop(name, None)
        await llm.remove_lora(request.lora_int_id)

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """The LoRARequest for a request's `adapter` (None: the base model)."""
        if not name:
            yield None
            return
        request = self._requests.get(name)
        if request is None:
            raise NotFound(what="adapter", name=name, available=list(self._requests))
        with self._users.hold([name]):
            yield request
