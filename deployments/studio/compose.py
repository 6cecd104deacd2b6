"""`Studio`: text → (image ∥ voice per scene), with no Ray in sight.

The studio holds handles, not models: the text family writes a plan under a
JSON schema, then every scene's image and narration are requested at once and
reported in completion order. `Studio(text, image, voice)` takes Ray
`DeploymentHandle`s in production and fakes in unit tests.

Cancellation: when the Compose stream is closed or cancelled (client deadline
or disconnect), the `finally` below cancels every child response still in
flight, synchronously, so each family's engine stops its request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from deployments.engines.checks import check_count, check_length
from deployments.errors import ChildFailed, ErrorKind, InvalidArgument
from deployments.ingress import use_cache_mode
from deployments.status import classify
from deployments.studio.children import Handle, InFlight, call_child
from deployments.studio.config import StudioAppConfig
from deployments.studio.plan import (
    PlanDraft,
    PlanInvalid,
    derive_seed,
    parse_plan,
    plan_max_tokens,
    plan_messages,
    plan_schema,
)
from maestro.v1 import image_pb2, studio_pb2, text_pb2, voice_pb2
from observability import metrics, tracing

__all__ = ["PLAN_ATTEMPTS", "Studio"]

logger = logging.getLogger("maestro.studio")
PLAN_ATTEMPTS = 2  # the first plan, and one retry with another seed
Event = studio_pb2.ComposeResponse


@dataclass
class _Stage:
    """Wall-clock span of one stage across all scenes (first start, last end)."""

    start: float | None = None
    end: float | None = None

    def record(self, start: float, end: float) -> None:
        self.start = start if self.start is None else min(self.start, start)
        self.end = end if self.end is None else max(self.end, end)

    @property
    def seconds(self) -> float:
        return 0.0 if self.start is None or self.end is None else self.end - self.start


@dataclass
class _Run:
    """Book-keeping of one Compose call."""

    request_id: str
    seed: int
    inflight: InFlight = field(default_factory=InFlight)
    stages: dict[str, _Stage] = field(
        default_factory=lambda: {s: _Stage() for s in ("plan", "image", "audio")}
    )
    failed_scenes: set[int] = field(default_factory=set)
    trace_id: str = ""  # of the Compose call, when its trace is recorded


class Studio:
    """Composes storyboards through the text, image and voice handles."""

    def __init__(
        self,
        text: Handle,
        image: Handle,
        voice: Handle,
        config: StudioAppConfig | None = None,
    ) -> None:
        self.text, self.image, self.voice = text, image, voice
        self.config = config or StudioAppConfig()
        self.running = 0  # Compose calls in progress, for ListModels stats

    async def compose(
        self, request: studio_pb2.ComposeRequest, request_id: str
    ) -> AsyncIterator[Event]:
        """Plan first, then scene events in completion order, `done` last."""
        num_scenes = self._validate(request)
        if request.HasField("seed"):
            seed = request.seed
        else:  # its child calls are seeded at random: never cache them
            seed = secrets.randbits(31)
            use_cache_mode("bypass")
        run = _Run(
            request_id=request_id,
            seed=seed,
            trace_id=tracing.trace_id_of(tracing.current_span()),
        )
        began = time.monotonic()
        self.running += 1
        try:
            plan = await self._plan(request, num_scenes, run)
            yield Event(plan=_plan_proto(plan))
            async for event in self._render(request, plan, run):
                yield event
            yield Event(done=_done(run, num_scenes, time.monotonic() - began))
        finally:
            # Reached on success, error, cancellation and an early aclose():
            # no child outlives its Compose call.
            if len(run.inflight):
                logger.info(
                    "compose %s stopped: cancelling %d child calls",
                    request_id,
                    len(run.inflight),
                )
            run.inflight.cancel_all()
            self.running -= 1

    def _validate(self, request: studio_pb2.ComposeRequest) -> int:
        limits = self.config.plan
        brief = request.brief.strip()
        if not brief:
            raise InvalidArgument(field="brief", allowed="non-empty text")
        check_length("brief", request.brief, limits.max_brief_chars)
        check_length("style", request.style, limits.max_style_chars)
        num = request.num_scenes or limits.default_scenes
        check_count(
            "num_scenes",
            num,
            1,
            limits.max_scenes,
            shown=request.num_scenes,
            allowed=f"1..{limits.max_scenes} (0 takes {limits.default_scenes})",
        )
        return num

    async def _plan(
        self, request: studio_pb2.ComposeRequest, num_scenes: int, run: _Run
    ) -> PlanDraft:
        """Ask for the plan; retry once with another seed if it is invalid."""
        limits = self.config.plan
        requested = (
            request.text.max_tokens if request.text.HasField("max_tokens") else None
        )
        budget = plan_max_tokens(limits, requested)
        schema = _json(plan_schema(num_scenes, limits, budget))
        problems: list[str] = []
        for attempt in range(PLAN_ATTEMPTS):
            text_request = _plan_request(request, num_scenes, run, attempt)
            text_request.json_schema = schema
            text_request.max_tokens = budget
            start = time.monotonic()
            span = tracing.start_span(
                "studio.plan", {"maestro.studio.attempt": attempt}
            )
            status = "OK"
            try:
                with tracing.attached(span):  # the text call joins this span
                    reply = await call_child(
                        self.text, "GenerateText", text_request, run.inflight
                    )
            except asyncio.CancelledError:
                status = "CANCELLED"
                raise
            except Exception as exc:
                kind, message = classify(exc)
                status = kind.name
                raise ChildFailed(kind, f"plan (text family): {message}") from None
            finally:
                run.stages["plan"].record(start, time.monotonic())
                tracing.end_span(span, status)
            try:
                return parse_plan(reply.text, num_scenes, limits)
            except PlanInvalid as exc:
                problems.append(f"attempt {attempt + 1}: {exc}")
                logger.info("compose %s: plan rejected: %s", run.request_id, exc)
        raise PlanInvalid(
            "the text model did not write a valid plan in "
            f"{PLAN_ATTEMPTS} attempts ({'; '.join(problems)})"
        )

    async def _render(
        self, request: studio_pb2.ComposeRequest, plan: PlanDraft, run: _Run
    ) -> AsyncIterator[Event]:
        """Every scene's image and audio at once; events as each finishes."""
        tasks = []
        for index, scene in enumerate(plan.scenes):
            image_req = _image_request(request, scene.image_prompt, index, run)
            voice_req = _voice_request(request, scene.narration, index, run)
            tasks.append(
                asyncio.ensure_future(
                    self._scene_call(
                        index, "image", self.image, "GenerateImage", image_req, run
                    )
                )
            )
            tasks.append(
                asyncio.ensure_future(
                    self._scene_call(
                        index, "audio", self.voice, "Synthesize", voice_req, run
                    )
                )
            )
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()

    async def _scene_call(
        self,
        index: int,
        stage: str,
        handle: Handle,
        method: str,
        child_request: Any,
        run: _Run,
    ) -> Event:
        """One child call, as the event that reports it (never raises)."""
        start = time.monotonic()
        span = tracing.start_span(
            f"studio.scene.{stage}", {"maestro.studio.scene": index}
        )
        status = "OK"
        try:
            with tracing.attached(span):  # the family call joins this span
                reply = await call_child(handle, method, child_request, run.inflight)
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        except Exception as exc:
            kind, message = classify(exc)
            status = kind.name
            run.failed_scenes.add(index)
            metrics.inc("maestro_studio_scene_failures", stage=stage)
            logger.info(
                "compose %s scene %d %s -> %s: %s",
                run.request_id,
                index,
                stage,
                kind.name,
                message,
                exc_info=exc if kind is ErrorKind.INTERNAL else None,
            )
            return Event(
                scene_error=studio_pb2.SceneError(
                    scene=index, stage=stage, code=kind.name, message=message
                )
            )
        finally:
            run.stages[stage].record(start, time.monotonic())
            tracing.end_span(span, status)
        if stage == "image":
            if not reply.images:
                run.failed_scenes.add(index)
                metrics.inc("maestro_studio_scene_failures", stage=stage)
                return _internal_error(index, stage, "image family returned none")
            return Event(
                scene_image=studio_pb2.SceneImage(scene=index, image=reply.images[0])
            )
        return Event(
            scene_audio=studio_pb2.SceneAudio(
                scene=index, audio=reply.audio, info=reply.info
            )
        )


def _json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))


def _plan_request(
    request: studio_pb2.ComposeRequest, num_scenes: int, run: _Run, attempt: int
) -> text_pb2.GenerateTextRequest:
    settings = request.text
    messages = [
        text_pb2.ChatMessage(role=role, content=content)
        for role, content in plan_messages(request.brief.strip(), num_scenes)
    ]
    msg = text_pb2.GenerateTextRequest(
        model=settings.model,
        messages=messages,
        seed=derive_seed(run.seed, "plan", attempt),
        request_id=f"{run.request_id}-plan-{attempt}",
    )
    for name in ("temperature", "top_p"):
        if settings.HasField(name):
            setattr(msg, name, getattr(settings, name))
    return msg


def _image_request(
    request: studio_pb2.ComposeRequest, prompt: str, index: int, run: _Run
) -> image_pb2.GenerateImageRequest:
    settings = request.image
    style = request.style.strip()
    msg = image_pb2.GenerateImageRequest(
        model=settings.model,
        prompt=f"{prompt}, {style}" if style else prompt,
        width=settings.width,
        height=settings.height,
        steps=settings.steps,
        format=settings.format,
        num_images=1,
        seed=derive_seed(run.seed, "image", 0 if settings.same_seed else index),
        request_id=f"{run.request_id}-scene{index}-image",
        style=settings.style,
        ip_adapter_image=settings.reference_image,
        loras=settings.loras,
    )
    if settings.HasField("guidance_scale"):
        msg.guidance_scale = settings.guidance_scale
    if settings.HasField("reference_scale"):
        msg.ip_adapter_scale = settings.reference_scale
    return msg


def _voice_request(
    request: studio_pb2.ComposeRequest, narration: str, index: int, run: _Run
) -> voice_pb2.SynthesizeRequest:
    settings = request.voice
    msg = voice_pb2.SynthesizeRequest(
        model=settings.model,
        text=narration,
        voice=settings.voice,
        format=settings.format,
        seed=derive_seed(run.seed, "audio", index),
        request_id=f"{run.request_id}-scene{index}-audio",
    )
    if settings.HasField("speaking_rate"):
        msg.speaking_rate = settings.speaking_rate
    return msg


def _plan_proto(plan: PlanDraft) -> studio_pb2.Plan:
    return studio_pb2.Plan(
        title=plan.title,
        scenes=[
            studio_pb2.Scene(
                index=i, narration=s.narration, image_prompt=s.image_prompt
            )
            for i, s in enumerate(plan.scenes)
        ],
    )


def _internal_error(index: int, stage: str, message: str) -> Event:
    return Event(
        scene_error=studio_pb2.SceneError(
            scene=index,
            stage=stage,
            code=ErrorKind.INTERNAL.name,
            message=message,
        )
    )


def _done(run: _Run, num_scenes: int, total: float) -> studio_pb2.ComposeDone:
    timings = [
        studio_pb2.StageTiming(stage=name, seconds=stage.seconds)
        for name, stage in run.stages.items()
    ]
    timings.append(studio_pb2.StageTiming(stage="total", seconds=total))
    for timing in timings:
        metrics.observe(
            "maestro_studio_stage_latency_seconds", timing.seconds, stage=timing.stage
        )
    failed = len(run.failed_scenes)
    return studio_pb2.ComposeDone(
        timings=timings,
        scenes_succeeded=num_scenes - failed,
        scenes_failed=failed,
        # The trace holding the plan, image and voice calls ("" when the
        # trace is not sampled or tracing is off).
        trace_id=run.trace_id,
    )
