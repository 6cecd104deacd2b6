"""The one interface every engine implements, and the base that implements it once.

An engine owns one model of one family (an LLM on vLLM, a diffusers pipeline,
a VITS voice) behind an async API, with no Ray and no gRPC in sight. From the
outside every engine looks the same — the ingress base (`EngineIngress`) and,
later, the model registry speak only to this interface:

    engine = SomeEngine(config)       # cheap: nothing loads yet
    await engine.start()              # load weights; status "loading" -> "ready"
    engine.ready, engine.status_message, engine.device, engine.engine_name
    engine.check_model(request.model) # NotFound unless it names this model
    engine.model_info()               # what ListModels reports
    engine.cache_form(request)        # the response cache's key, or None
    await engine.shutdown()           # free the model and what it started

In the spirit of Ray LLM's `LLMEngine` and MLServer's `MLModel` (`load` /
`unload`): a subclass implements `_load`, `_unload` and `ready`, and reports
its limits and live counters; the status bookkeeping lives here.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from deployments.errors import InvalidArgument, NotFound

__all__ = [
    "Engine",
    "EngineConfig",
    "ModelStatus",
    "resolve_device",
    "resolve_dtype",
]

DeviceSetting = Literal["auto", "cpu", "cuda"]


class EngineConfig(BaseModel):
    """Settings every engine has: which checkpoint, and the id clients use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Local path or hub id of the checkpoint.")
    model_id: str | None = Field(
        None, description="Id clients use in `model`; defaults to the folder name."
    )
    adapter_dirs: tuple[str, ...] = Field(
        (),
        description="Folders LoadAdapter may read run-time adapters (LoRA) "
        "from; relative ones are the project's. Empty: no run-time adapters.",
    )

    @property
    def served_id(self) -> str:
        return self.model_id or Path(self.model.rstrip("/")).name


def resolve_device(setting: str) -> str:
    """`auto` is cuda when torch sees a GPU, else cpu; anything else stands."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(setting: str, device: str) -> str:
    """`auto` is float16 on a GPU and float32 on a CPU (CPU half kernels are slow
    or missing); an explicit dtype stands."""
    if setting != "auto":
        return setting
    return "float16" if device.startswith("cuda") else "float32"


@dataclass(frozen=True)
class ModelStatus:
    """One model as ListModels reports it, free of the transport."""

    id: str
    engine: str
    device: str
    ready: bool
    status_message: str
    limits: dict[str, str] = field(default_factory=dict)
    stats: dict[str, str] = field(default_factory=dict)


class Engine(abc.ABC):
    """Start/status bookkeeping, `check_model` and `model_info`, written once."""

    family: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config
        self._status = "not started"
        self.device = "cpu"
        # What identifies the loaded model's files, and each adapter's, for
        # the response cache (set when they load; `deployments.cache.keys`).
        self.files_print = ""
        self.adapter_prints: dict[str, str] = {}

    @property
    def status_message(self) -> str:
        """What the engine is doing; says so when a started engine died."""
        if self._status == "ready" and not self.ready:
            return f"stopped unexpectedly: {self._death_reason()}"
        return self._status

    @status_message.setter
    def status_message(self, value: str) -> None:
        self._status = value

    def _death_reason(self) -> str:
        """Why a started engine is no longer ready (a subclass knows better)."""
        return "the model is no longer loaded"

    # What a subclass provides -------------------------------------------

    @property
    @abc.abstractmethod
    def ready(self) -> bool:
        """True while the model is loaded and able to serve."""

    @property
    @abc.abstractmethod
    def engine_name(self) -> str:
        """The backend and its version, e.g. "vllm 0.32.0"."""

    @abc.abstractmethod
    async def _load(self) -> None:
        """Load the model (off the event loop for blocking work)."""

    @abc.abstractmethod
    async def _unload(self) -> None:
        """Release the model and anything it started (threads, processes)."""

    def limits_info(self) -> dict[str, str]:
        """Request limits as ListModels reports them (empty until started)."""
        return {}

    @property
    def can_sleep(self) -> bool:
        """True when `sleep`/`wake` free the device and restore it faster
        than a new load (vLLM's sleep mode on a GPU)."""
        return False

    async def sleep(self) -> None:
        """Free the device memory, keep what a fast `wake` needs."""
        raise NotImplementedError

    async def wake(self) -> None:
        """Undo `sleep`: serve again."""
        raise NotImplementedError

    def memory_bytes(self) -> int | None:
        """Bytes the loaded model holds (weights, and caches it reserves);
        None when the engine cannot tell."""
        return None

    @property
    def adapters(self) -> tuple[str, ...]:
        """Adapters requests may select (loaded at start or at run time)."""
        return ()

    async def load_adapter(self, name: str, path: str, control_type: str = "") -> None:
        """Load an adapter at run time (`path` is already checked);
        `control_type`: a ControlNet for controls of that type (image only)."""
        raise InvalidArgument(
            field="model",
            value=self.served_id,
            allowed="a model whose engine takes run-time adapters",
        )

    async def unload_adapter(self, name: str) -> None:
        """Remove a run-time adapter once requests using it finished."""
        raise NotFound(what="adapter", name=name, available=list(self.adapters))

    def stats(self) -> dict[str, str]:
        """Live counters for ListModels."""
        return {}

    def cache_form(self, request: Any) -> dict[str, Any] | None:
        """The request as the response cache keys it — every default filled
        in, no request id, plus the model's identity (`_identified`) — or
        None when its result is not a function of it (unseeded sampling).
        Nothing is cached by default."""
        return None

    def _identified(
        self, form: dict[str, Any], adapters: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """`form` with what identifies the model and the adapters it uses:
        the checkpoint's files, the engine settings, engine and version."""
        return {
            "request": form,
            "model": {
                "files": self.files_print,
                "config": self.config.model_dump(mode="json"),
                "engine": self.engine_name,
            },
            "adapters": {name: self.adapter_prints.get(name, "") for name in adapters},
        }

    def identity(self) -> str:
        """A digest of the model's identity (`_identified`), "" before it
        started: ListModels shows it, and the studio keys a Compose on the
        identities of the models its child calls use."""
        from deployments.cache.keys import digest

        if not self.files_print:
            return ""
        return digest(self._identified({})["model"])[:16]

    # The shared part ------------------------------------------------------

    @property
    def served_id(self) -> str:
        return str(self.config.served_id)

    async def start(self) -> None:
        """Load the model; the status says how far it got (and why it failed)."""
        from deployments.cache.keys import fingerprint

        self.status_message = "loading"
        try:
            await self._load()
            self.files_print = await asyncio.to_thread(fingerprint, self.config.model)
            for adapter in getattr(self.config, "loras", ()):
                self.adapter_prints[adapter.name] = await asyncio.to_thread(
                    fingerprint, adapter.path
                )
        except Exception as exc:
            self.status_message = f"failed to start: {type(exc).__name__}: {exc}"
            raise
        self.status_message = "ready"

    async def shutdown(self) -> None:
        """Unload the model; safe to call twice, and before `start`."""
        if self.status_message == "stopped":
            return
        try:
            await self._unload()
        finally:
            self.status_message = "stopped"

    def check_model(self, model: str) -> None:
        """A request's `model` must be empty (the default) or this model's id."""
        if model and model != self.served_id:
            raise NotFound(what="model", name=model, available=[self.served_id])

    def model_info(self) -> ModelStatus:
        return ModelStatus(
            id=self.served_id,
            engine=self.engine_name,
            device=self.device,
            ready=self.ready,
            status_message=self.status_message,
            limits=self.limits_info(),
            stats=self.stats(),
        )
