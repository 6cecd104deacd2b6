"""The studio's composition logic with fake family handles: no Ray, no models.

The fakes are honest about the one thing that matters here: like a Ray
`DeploymentResponse`, awaiting a fake response and then cancelling the awaiter
does *not* stop the fake engine (the await is shielded); only
`response.cancel()` does, as `ray.cancel` does for a replica. Each fake engine
counts its running requests and records (scene, stage, start, end) spans, so
the tests check behaviour (order, overlap, cancellation) rather than timings.
What the fakes cannot show — Ray's own cancellation path and real engines —
is covered by tests/e2e/test_studio_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError

from deployments.errors import ChildFailed, ErrorKind, InvalidArgument, NotFound
from deployments.status import classify, to_status
from deployments.studio import Studio, StudioAppConfig, StudioDeployment
from deployments.studio.plan import (
    PlanInvalid,
    derive_seed,
    parse_plan,
    plan_schema,
    scene_lengths,
)
from maestro.v1 import image_pb2, models_pb2, studio_pb2, text_pb2, voice_pb2

Behaviour = Callable[[Any], Awaitable[Any]]


class FakeResponse:
    """A DeploymentResponse look-alike: only cancel() stops the engine."""

    def __init__(self, work: Awaitable[Any]) -> None:
        self.task = asyncio.ensure_future(work)
        self.cancel_calls = 0

    def cancel(self) -> None:
        self.cancel_calls += 1
        self.task.cancel()

    def __await__(self) -> Any:
        return asyncio.shield(self.task).__await__()


@dataclass
class FakeEngine:
    """One family: a method per RPC, a running count and recorded spans."""

    family: str
    delay: float = 0.0
    running: int = 0
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    responses: list[FakeResponse] = field(default_factory=list)
    options: list[dict[str, str]] = field(default_factory=list)
    fail: Callable[[Any], BaseException | None] = lambda request: None
    answer: Callable[[Any], Any] | None = None
    identity: str = "v1"  # of its model, as ListModels states it

    def __getattr__(self, method: str) -> Any:
        engine = self

        class _Method:
            def remote(self, request: Any, **options: str) -> FakeResponse:
                engine.options.append(options)  # maestro_caller, maestro_cache
                response = FakeResponse(engine._serve(method, request))
                engine.responses.append(response)
                return response

        return _Method()

    async def _serve(self, method: str, request: Any) -> Any:
        if method == "ListModels":
            return models_pb2.ListModelsResponse(
                models=[
                    models_pb2.ModelInfo(
                        id=f"demo-{self.family}",
                        ready=True,
                        stats={"identity": self.identity} if self.identity else {},
                    )
                ]
            )
        if method == "Check":
            return health_pb2.HealthCheckResponse(
                status=health_pb2.HealthCheckResponse.SERVING
            )
        self.requests.append(request)
        self.running += 1
        start = time.monotonic()
        try:
            await asyncio.sleep(self.delay)
            error = self.fail(request)
            if error is not None:
                raise error
            return self.answer(request) if self.answer else _answer(method, request)
        finally:
            self.running -= 1
            self.spans.append((request.request_id, start, time.monotonic()))


def _plan_text(request: text_pb2.GenerateTextRequest) -> str:
    """A plan that depends on the seed (as a sampled model's would)."""
    n = json.loads(request.json_schema)["properties"]["scenes"]["minItems"]
    scenes = [
        {
            "narration": f"Scene {i} told with seed {request.seed}.",
            "image_prompt": f"picture {i} seed {request.seed}",
        }
        for i in range(n)
    ]
    return json.dumps({"title": f"Story {request.seed}", "scenes": scenes})


def _answer(method: str, request: Any) -> Any:
    if method == "GenerateText":
        return text_pb2.GenerateTextResponse(text=_plan_text(request))
    if method == "GenerateImage":
        data = f"png {request.seed} {request.prompt}".encode()
        return image_pb2.GenerateImageResponse(
            images=[
                image_pb2.Image(data=data, mime_type="image/png", seed=request.seed)
            ]
        )
    if method == "Synthesize":
        return voice_pb2.SynthesizeResponse(
            audio=f"wav {request.seed} {request.text}".encode(),
            info=voice_pb2.AudioInfo(sample_rate=16000, channels=1),
        )
    raise AssertionError(method)


@dataclass
class Families:
    text: FakeEngine
    image: FakeEngine
    voice: FakeEngine

    def studio(self) -> Studio:
        return Studio(self.text, self.image, self.voice, StudioAppConfig())

    @property
    def engines(self) -> tuple[FakeEngine, ...]:
        return (self.text, self.image, self.voice)


@pytest.fixture
def families() -> Families:
    return Families(
        FakeEngine("text"), FakeEngine("image", 0.05), FakeEngine("voice", 0.05)
    )


def _request(**kw: Any) -> studio_pb2.ComposeRequest:
    kw.setdefault("brief", "a lighthouse keeper finds a comet")
    kw.setdefault("num_scenes", 3)
    return studio_pb2.ComposeRequest(**kw)


async def _collect(studio: Studio, request: studio_pb2.ComposeRequest) -> list[Any]:
    return [e async for e in studio.compose(request, "rid")]


def _kinds(events: list[Any]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def test_event_order_plan_first_done_last_one_image_and_audio_per_scene(
    families: Families,
) -> None:
    events = await _collect(families.studio(), _request(num_scenes=3, seed=5))
    kinds = _kinds(events)
    assert kinds[0] == "plan" and kinds[-1] == "done"
    assert len(events[0].plan.scenes) == 3
    assert [s.index for s in events[0].plan.scenes] == [0, 1, 2]
    middle = events[1:-1]
    assert sorted(e.scene_image.scene for e in middle if e.HasField("scene_image")) == [
        0,
        1,
        2,
    ]
    assert sorted(e.scene_audio.scene for e in middle if e.HasField("scene_audio")) == [
        0,
        1,
        2,
    ]
    assert len(middle) == 6
    done = events[-1].done
    assert (done.scenes_succeeded, done.scenes_failed) == (3, 0)
    assert [t.stage for t in done.timings] == ["plan", "image", "audio", "total"]
    assert done.trace_id == ""  # no recorded span around it here: no trace


async def test_scene_calls_run_concurrently_after_the_plan(families: Families) -> None:
    await _collect(families.studio(), _request(num_scenes=4, seed=1))
    (plan_span,) = families.text.spans
    render = families.image.spans + families.voice.spans
    assert len(render) == 8
    # Every image and narration started before any of them finished: the
    # spans of all scenes overlap instead of running one after another.
    assert max(start for _, start, _ in render) < min(end for _, _, end in render)
    assert all(start >= plan_span[2] for _, start, _ in render)


async def test_style_folds_into_prompts_and_settings_reach_children(
    families: Families,
) -> None:
    request = _request(
        num_scenes=2,
        seed=3,
        style="watercolour",
        image=studio_pb2.ComposeImageSettings(
            width=128, height=96, steps=3, style="sketch"
        ),
        voice=studio_pb2.ComposeVoiceSettings(voice="b", speaking_rate=1.5),
        text=studio_pb2.ComposeTextSettings(temperature=0.7, max_tokens=900),
    )
    await _collect(families.studio(), request)
    (plan,) = families.text.requests
    assert plan.temperature == pytest.approx(0.7) and plan.max_tokens == 900
    assert json.loads(plan.json_schema)["properties"]["scenes"]["maxItems"] == 2
    for image in families.image.requests:
        assert image.prompt.endswith(", watercolour") and image.num_images == 1
        assert (image.width, image.height, image.steps) == (128, 96, 3)
        assert image.style == "sketch"  # the image model's preset, passed on
    for speech in families.voice.requests:
        assert speech.voice == "b" and speech.speaking_rate == pytest.approx(1.5)


async def test_a_character_rides_on_every_scene(families: Families) -> None:
    """One reference image, character LoRA and image seed for all scenes."""
    character = studio_pb2.ComposeImageSettings(
        reference_image=b"reference png",
        reference_scale=0.7,
        loras=[image_pb2.LoraWeight(name="hero", weight=0.9)],
        same_seed=True,
    )
    await _collect(families.studio(), _request(num_scenes=3, seed=8, image=character))
    images = families.image.requests
    assert len(images) == 3
    for image in images:
        assert image.ip_adapter_image == b"reference png"
        assert image.ip_adapter_scale == pytest.approx(0.7)
        assert [(lora.name, lora.weight) for lora in image.loras] == [
            ("hero", pytest.approx(0.9))
        ]
    assert {image.seed for image in images} == {derive_seed(8, "image", 0)}


async def test_same_seed_same_storyboard(families: Families) -> None:
    def storyboard(events: list[Any]) -> list[bytes]:
        return sorted(e.SerializeToString() for e in events[:-1])  # done: timings

    first = await _collect(families.studio(), _request(seed=42))
    again = await _collect(families.studio(), _request(seed=42))
    other = await _collect(families.studio(), _request(seed=43))
    assert storyboard(first) == storyboard(again)
    assert storyboard(first) != storyboard(other)
    seeds = [r.seed for r in families.image.requests[:3]]
    assert len(set(seeds)) == 3  # every scene its own seed
    assert seeds == [derive_seed(42, "image", i) for i in range(3)]


async def test_a_failing_scene_reports_scene_error_and_the_rest_continue(
    families: Families,
) -> None:
    def fail(request: Any) -> BaseException | None:
        if "scene1" not in request.request_id:
            return None
        cause = InvalidArgument(field="width", allowed="64..512", value=9999)
        # What a DeploymentHandle caller receives: the family's error wrapped.
        return RayTaskError(
            "GenerateImage", "Traceback ...", cause
        ).as_instanceof_cause()

    families.image.fail = fail
    events = await _collect(families.studio(), _request(num_scenes=3, seed=2))
    errors = [e.scene_error for e in events if e.HasField("scene_error")]
    assert [(e.scene, e.stage, e.code) for e in errors] == [
        (1, "image", "INVALID_ARGUMENT")
    ]
    assert "width" in errors[0].message and "Traceback" not in errors[0].message
    assert {e.scene_image.scene for e in events if e.HasField("scene_image")} == {0, 2}
    assert {e.scene_audio.scene for e in events if e.HasField("scene_audio")} == {
        0,
        1,
        2,
    }
    done = events[-1].done
    assert (done.scenes_succeeded, done.scenes_failed) == (2, 1)


async def test_invalid_plan_is_retried_once_with_another_seed(
    families: Families,
) -> None:
    calls = 0

    def answer(request: text_pb2.GenerateTextRequest) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # schema-shaped but unspeakable, as a random model may
            plan = json.loads(_plan_text(request))
            plan["scenes"][0]["narration"] = "?! ..."
            return text_pb2.GenerateTextResponse(text=json.dumps(plan))
        return text_pb2.GenerateTextResponse(text=_plan_text(request))

    families.text.answer = answer
    events = await _collect(families.studio(), _request(seed=9))
    assert _kinds(events)[0] == "plan"
    first, second = families.text.requests
    assert first.seed != second.seed


async def test_plan_invalid_twice_fails_with_a_clear_status(
    families: Families,
) -> None:
    families.text.answer = lambda r: text_pb2.GenerateTextResponse(text='{"title"')
    with pytest.raises(PlanInvalid) as info:
        await _collect(families.studio(), _request(seed=9))
    code, details = to_status(info.value)
    assert code == grpc.StatusCode.INTERNAL
    assert "valid plan in 2 attempts" in details and "not JSON" in details
    assert len(families.text.requests) == 2
    assert not families.image.requests and not families.voice.requests


async def test_text_family_error_keeps_its_code(families: Families) -> None:
    families.text.fail = lambda r: NotFound(what="model", name="x", available=["y"])
    with pytest.raises(ChildFailed) as info:
        await _collect(families.studio(), _request())
    assert to_status(info.value)[0] == grpc.StatusCode.NOT_FOUND
    assert str(info.value).startswith("plan (text family): model 'x' not found")


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_cancelling_compose_cancels_every_child(families: Families) -> None:
    """Client deadline or disconnect: Ray cancels the Compose task."""
    families.image.delay = families.voice.delay = 60.0
    stream = families.studio().compose(_request(num_scenes=4, seed=1), "rid")
    assert (await stream.__anext__()).HasField("plan")
    consumer = asyncio.ensure_future(stream.__anext__())
    await _wait_for(lambda: families.image.running + families.voice.running == 8)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await _wait_for(lambda: families.image.running + families.voice.running == 0)
    children = families.image.responses + families.voice.responses
    assert len(children) == 8 and all(r.cancel_calls >= 1 for r in children)
    assert all(r.task.cancelled() for r in children)


async def test_leaving_the_stream_early_cancels_the_rest(families: Families) -> None:
    """The consumer stops after the first scene event (aclose, no task cancel)."""
    families.image.delay, families.voice.delay = 0.0, 60.0
    stream = families.studio().compose(_request(num_scenes=4, seed=1), "rid")
    assert (await stream.__anext__()).HasField("plan")
    assert (await stream.__anext__()).HasField("scene_image")
    await _wait_for(lambda: families.voice.running == 4)
    await stream.aclose()
    await _wait_for(lambda: families.voice.running == 0)
    assert all(r.task.cancelled() for r in families.voice.responses)


async def test_cancelling_during_the_plan_stops_the_text_engine(
    families: Families,
) -> None:
    families.text.delay = 60.0
    studio = families.studio()
    consumer = asyncio.ensure_future(_collect(studio, _request()))
    await _wait_for(lambda: families.text.running == 1)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await _wait_for(lambda: families.text.running == 0)
    assert families.text.responses[0].cancel_calls == 1
    assert studio.running == 0 and not families.image.requests


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"brief": "  "}, "brief"),
        ({"num_scenes": 9}, "num_scenes"),
        ({"num_scenes": -1}, "num_scenes"),
        ({"style": "x" * 301}, "style"),
    ],
)
async def test_bad_requests_name_the_field(
    families: Families, fields: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidArgument, match=name):
        await _collect(families.studio(), _request(**fields))
    assert not families.text.requests


async def test_num_scenes_zero_takes_the_default(families: Families) -> None:
    events = await _collect(families.studio(), _request(num_scenes=0))
    assert len(events[0].plan.scenes) == StudioAppConfig().plan.default_scenes


def test_schema_bounds_and_parser_agree() -> None:
    limits = StudioAppConfig().plan
    schema = plan_schema(2, limits, limits.max_tokens)
    scenes = schema["properties"]["scenes"]
    assert scenes["minItems"] == scenes["maxItems"] == 2
    narration = scenes["items"]["properties"]["narration"]
    assert narration["maxLength"] == limits.narration_chars
    good = {"title": "T", "scenes": [{"narration": "A b.", "image_prompt": "c"}] * 2}
    plan = parse_plan(json.dumps(good), 2, limits)
    assert plan.title == "T" and plan.scenes[1].narration == "A b."
    with pytest.raises(PlanInvalid, match="1 scenes, expected 2"):
        parse_plan(json.dumps({**good, "scenes": good["scenes"][:1]}), 2, limits)
    with pytest.raises(PlanInvalid, match="scene 0 image_prompt"):
        bad = {"title": "T", "scenes": [{"narration": "a", "image_prompt": " "}] * 2}
        parse_plan(json.dumps(bad), 2, limits)


def test_many_scenes_shrink_to_the_token_budget() -> None:
    import re

    limits = StudioAppConfig().plan
    full = scene_lengths(2, limits, limits.max_tokens)
    assert full == (limits.title_chars, limits.narration_chars, 100)
    title, narration, prompt = scene_lengths(8, limits, limits.max_tokens)
    assert narration < limits.narration_chars and prompt < limits.image_prompt_chars
    assert title + 32 + 8 * (narration + prompt + 40) <= limits.max_tokens
    with pytest.raises(InvalidArgument, match="text.max_tokens"):
        scene_lengths(8, limits, 200)
    pattern = plan_schema(1, limits, 400)["properties"]["title"]["pattern"]
    assert re.search(pattern, "A fine day, isn't it? #1 [ok] ~")
    assert not re.search(pattern, 'say "hi"') and not re.search(pattern, "a\\b")
    assert not re.search(pattern, " leading space") and not re.search(pattern, "é")


def test_child_errors_map_to_status_codes() -> None:
    wrapped = RayTaskError(
        "Synthesize",
        "Traceback (most recent call last): ...",
        NotFound(what="voice", name="z", available=["a"]),
    ).as_instanceof_cause()
    assert to_status(wrapped) == (
        grpc.StatusCode.NOT_FOUND,
        "voice 'z' not found; available: a",
    )
    code, _ = to_status(BackPressureError(num_queued_requests=1, max_queued_requests=1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert to_status(RuntimeError("boom"))[0] == grpc.StatusCode.INTERNAL
    assert classify(RuntimeError("boom")) == (
        ErrorKind.INTERNAL,
        "internal error; see the server log",
    )


def test_family_errors_survive_pickling_through_ray() -> None:
    import cloudpickle

    error = InvalidArgument(field="width", allowed="64..512", value=9999)
    again = cloudpickle.loads(cloudpickle.dumps(error))
    assert type(again) is InvalidArgument and str(again) == str(error)
    failed = cloudpickle.loads(
        cloudpickle.dumps(ChildFailed(ErrorKind.UNAVAILABLE, "x"))
    )
    assert failed.kind is ErrorKind.UNAVAILABLE and str(failed) == "x"


async def test_list_models_and_health_report_chained_families(
    families: Families,
) -> None:
    cls = StudioDeployment.func_or_class
    deployment = cls({}, families.text, families.image, families.voice)
    (info,) = (await deployment.ListModels(models_pb2.ListModelsRequest())).models
    assert info.family == models_pb2.FAMILY_STUDIO and info.ready
    assert info.stats["image"].startswith("reachable, ready: demo-image")
    health = await deployment.Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    class Unreachable:
        def __getattr__(self, name: str) -> Any:
            raise ConnectionError("no such app")

    broken = cls({}, families.text, Unreachable(), families.voice)
    (info,) = (await broken.ListModels(models_pb2.ListModelsRequest())).models
    assert not info.ready and info.stats["image"].startswith("unreachable")
    health = await broken.Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_an_unseeded_compose_bypasses_the_families_caches(
    families: Families,
) -> None:
    """Its child calls are seeded at random: caching them would fill the
    families' caches with entries nobody asks for again. (Seeded first: the
    directive lasts for the rest of the task that served the Compose.)"""
    await _collect(families.studio(), _request(num_scenes=1, seed=5))
    seeded = len(families.text.options)
    assert seeded and all("maestro_cache" not in o for o in families.text.options)
    await _collect(families.studio(), _request(num_scenes=1))
    unseeded = families.text.options[seeded:] + families.voice.options[1:]
    assert unseeded and all(o.get("maestro_cache") == "bypass" for o in unseeded)


async def _compose(deployment: Any, request: studio_pb2.ComposeRequest) -> list[Any]:
    return [e async for e in deployment.Compose(request)]


def _without_done(events: list[Any]) -> list[bytes]:
    return [e.SerializeToString() for e in events if e.WhichOneof("event") != "done"]


async def test_a_seeded_compose_is_replayed_from_the_studio_cache(
    families: Families,
) -> None:
    cls = StudioDeployment.func_or_class
    config = {"cache": {"enabled": True}}
    deployment = cls(config, families.text, families.image, families.voice)
    first = await _compose(deployment, _request(num_scenes=2, seed=9))
    calls = [len(e.requests) for e in families.engines]
    again = await _compose(deployment, _request(num_scenes=2, seed=9))
    assert [len(e.requests) for e in families.engines] == calls  # no child call
    assert _without_done(again) == _without_done(first)
    (done,) = [e.done for e in again if e.WhichOneof("event") == "done"]
    assert [t.stage for t in done.timings] == ["total"]  # the replay's own
    assert done.scenes_succeeded == 2
    # Another seed, an unseeded Compose, bypass: the children are called.
    await _compose(deployment, _request(num_scenes=2, seed=10))
    assert len(families.voice.requests) == calls[2] + 2
    await _compose(deployment, _request(num_scenes=2))
    await _compose(deployment, _request(num_scenes=2))
    assert len(families.voice.requests) == calls[2] + 6
    # A family's model changed: its identity did, so the entry is not met.
    families.image.identity = "v2"
    await _compose(deployment, _request(num_scenes=2, seed=9))
    assert len(families.voice.requests) == calls[2] + 8
    # A family that cannot say which model it runs: no Compose entry.
    families.image.identity = ""
    for _ in range(2):
        await _compose(deployment, _request(num_scenes=2, seed=9))
    assert len(families.voice.requests) == calls[2] + 12
    stats = (await deployment.CacheStats(models_pb2.CacheStatsRequest())).stats
    assert stats.family == models_pb2.FAMILY_STUDIO and stats.entries == 3
    assert (await deployment.ClearCache(models_pb2.ClearCacheRequest())).removed == 3


async def test_a_compose_with_a_failed_scene_is_not_kept(families: Families) -> None:
    families.image.fail = lambda request: InvalidArgument(
        field="width", allowed="64..512"
    )
    cls = StudioDeployment.func_or_class
    deployment = cls({"cache": {"enabled": True}}, *families.engines)
    for _ in range(2):
        events = await _compose(deployment, _request(num_scenes=1, seed=3))
        assert any(e.WhichOneof("event") == "scene_error" for e in events)
    assert len(families.text.requests) == 2
