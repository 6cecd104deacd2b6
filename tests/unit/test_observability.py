"""Spans and metrics of the ingress layer and the families, without Ray.

An in-memory span exporter stands in for Ray's tracer provider, and an
in-memory recorder for Ray's metrics: the tests assert on span names, parent
links, attributes and recorded values.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from deployments.engines.batching import BatchingConfig, KeyedBatcher
from deployments.engines.image.types import EncodedImage, ImageRequest, ImageResult
from deployments.engines.text.types import TextDelta
from deployments.engines.voice.types import AudioInfo, SpeechChunk, SpeechRequest
from deployments.errors import InvalidArgument
from deployments.image.telemetry import request_span as image_span
from deployments.image.telemetry import watch_batches
from deployments.ingress import REQUEST_ID_KEY, TRACE_ID_KEY, stream_rpc, unary_rpc
from deployments.studio.compose import Studio
from deployments.text.telemetry import collect, observed
from deployments.voice.telemetry import request_span as voice_span
from maestro.v1 import image_pb2, studio_pb2, text_pb2, voice_pb2
from observability import metrics, tracing
from observability.config import (
    EXPORTER_IMPORT_PATH,
    ObservabilityConfig,
    load,
    tracing_environment,
)
from tests.helpers import ROOT

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """One SDK provider for the process (OpenTelemetry allows setting it once)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER


@pytest.fixture
def recorded() -> Iterator[metrics.InMemoryRecorder]:
    memory = metrics.InMemoryRecorder()
    old = metrics.use_recorder(memory)
    yield memory
    metrics.use_recorder(old)


class FakeContext:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.trailing: list[tuple[str, str]] = []

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        pass

    def set_trailing_metadata(self, md: list[tuple[str, str]]) -> None:
        self.trailing = md

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return []


class _Config:
    served_id = "demo-llm"


class _Engine:
    config = _Config()


class TextDeployment:
    """Named like the real one: the span's family comes from the class name."""

    engine = _Engine()

    @unary_rpc(text_pb2.GenerateTextResponse)
    async def GenerateText(
        self, request: text_pb2.GenerateTextRequest, request_id: str
    ) -> text_pb2.GenerateTextResponse:
        tracing.start_span("text.engine.generate").end()
        if request.prompt == "bad":
            raise InvalidArgument(field="prompt", allowed="not bad")
        return text_pb2.GenerateTextResponse(text="ok")

    @stream_rpc
    async def StreamText(
        self, request: text_pb2.StreamTextRequest, request_id: str
    ) -> AsyncIterator[text_pb2.StreamTextResponse]:
        deltas = observed(_deltas(), op="stream", running=lambda: 0)
        async with aclosing(deltas):  # as the real one (through `paced`)
            async for delta in deltas:
                yield text_pb2.StreamTextResponse(text=delta.text)


async def _deltas() -> AsyncIterator[TextDelta]:
    for i in range(1, 4):
        await asyncio.sleep(0.001)
        yield TextDelta(
            text=f"t{i}",
            prompt_tokens=5,
            completion_tokens=i,
            finish_reason="length" if i == 3 else None,
            queue_seconds=0.002 if i == 3 else None,
        )


def _by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {s.name: s for s in exporter.get_finished_spans()}


async def test_unary_span_parents_engine_span_and_returns_trace_id(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    context = FakeContext()
    request = text_pb2.GenerateTextRequest(prompt="hi", request_id="r-1")
    await TextDeployment().GenerateText(request, grpc_context=context)
    got = _by_name(spans)
    ingress, engine = got["text.GenerateText"], got["text.engine.generate"]
    assert engine.parent.span_id == ingress.context.span_id
    assert engine.context.trace_id == ingress.context.trace_id
    assert ingress.attributes["rpc.method"] == "GenerateText"
    assert ingress.attributes["maestro.model"] == "demo-llm"
    assert ingress.attributes["maestro.request_id"] == "r-1"
    assert ingress.attributes["rpc.grpc.status"] == "OK"
    trailing = dict(context.trailing)
    assert trailing[REQUEST_ID_KEY] == "r-1"
    assert trailing[TRACE_ID_KEY] == format(ingress.context.trace_id, "032x")
    assert recorded.total("maestro_requests", rpc="GenerateText", code="OK") == 1
    assert len(recorded.values["maestro_request_latency_seconds"]) == 1


async def test_error_status_is_on_span_and_in_metrics(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    context = FakeContext()
    request = text_pb2.GenerateTextRequest(prompt="bad")
    await TextDeployment().GenerateText(request, grpc_context=context)
    ingress = _by_name(spans)["text.GenerateText"]
    assert ingress.attributes["rpc.grpc.status"] == "INVALID_ARGUMENT"
    assert ingress.status.status_code == trace.StatusCode.ERROR
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    code = "INVALID_ARGUMENT"
    assert recorded.total("maestro_requests", rpc="GenerateText", code=code) == 1


async def test_stream_span_and_text_metrics(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    context = FakeContext()
    stream = TextDeployment().StreamText(
        text_pb2.StreamTextRequest(prompt="hi"), grpc_context=context
    )
    texts = [m.text async for m in stream]
    assert texts == ["t1", "t2", "t3"]
    got = _by_name(spans)
    ingress, engine = got["text.StreamText"], got["text.engine.stream"]
    assert engine.parent.span_id == ingress.context.span_id
    assert engine.attributes["maestro.text.prompt_tokens"] == 5
    assert engine.attributes["maestro.text.output_tokens"] == 3
    assert engine.attributes["maestro.text.ttft_s"] > 0
    assert engine.attributes["maestro.text.queue_s"] == 0.002
    assert engine.attributes["maestro.text.finish_reason"] == "length"
    assert recorded.total("maestro_text_prompt_tokens") == 5
    assert recorded.total("maestro_text_output_tokens") == 3
    assert len(recorded.values["maestro_text_time_to_first_token_seconds"]) == 1
    assert len(recorded.values["maestro_text_inter_token_latency_seconds"]) == 1
    assert recorded.values["maestro_text_queue_time_seconds"][0][0] == 0.002
    assert recorded.total("maestro_requests", rpc="StreamText", code="OK") == 1


async def test_stream_left_early_is_cancelled(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    stream = TextDeployment().StreamText(
        text_pb2.StreamTextRequest(prompt="hi"), grpc_context=FakeContext()
    )
    await anext(stream)
    await stream.aclose()
    got = _by_name(spans)
    assert got["text.StreamText"].attributes["rpc.grpc.status"] == "CANCELLED"
    assert got["text.engine.stream"].attributes["rpc.grpc.status"] == "CANCELLED"
    assert recorded.total("maestro_requests", rpc="StreamText", code="CANCELLED") == 1


async def test_collect_joins_the_completion() -> None:
    result = await collect(observed(_deltas(), op="generate", running=lambda: 0))
    assert result.text == "t1t2t3"
    assert result.finish_reason == "length"


class _Response:
    def __init__(self, value: Any) -> None:
        self.value = value

    def cancel(self) -> None:
        pass

    def __await__(self) -> Any:
        async def value() -> Any:
            await asyncio.sleep(0)
            # The child span a family replica would make, under the caller's.
            tracing.start_span("family.call").end()
            return self.value

        return value().__await__()


class _Method:
    def __init__(self, value: Any) -> None:
        self.value = value

    def remote(self, request: Any) -> _Response:
        return _Response(self.value)


class _Handle:
    def __init__(self, **methods: Any) -> None:
        self.methods = methods

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.methods[name])


def _plan_text(scenes: int) -> str:
    return json.dumps(
        {
            "title": "t",
            "scenes": [
                {"narration": "Hello there.", "image_prompt": "a cat"}
                for _ in range(scenes)
            ],
        }
    )


class StudioDeployment:
    def __init__(self) -> None:
        image = image_pb2.GenerateImageResponse(images=[image_pb2.Image(data=b"x")])
        self.studio = Studio(
            _Handle(GenerateText=text_pb2.GenerateTextResponse(text=_plan_text(2))),
            _Handle(GenerateImage=image),
            _Handle(Synthesize=voice_pb2.SynthesizeResponse(audio=b"a")),
        )

    @stream_rpc
    async def Compose(
        self, request: studio_pb2.ComposeRequest, request_id: str
    ) -> AsyncIterator[studio_pb2.ComposeResponse]:
        async for event in self.studio.compose(request, request_id):
            yield event


async def test_compose_is_one_trace_with_a_span_per_child_call(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    request = studio_pb2.ComposeRequest(brief="a cat", num_scenes=2, seed=1)
    events = [
        e async for e in StudioDeployment().Compose(request, grpc_context=FakeContext())
    ]
    done = events[-1].done
    finished = spans.get_finished_spans()
    compose = next(s for s in finished if s.name == "studio.Compose")
    assert done.trace_id == format(compose.context.trace_id, "032x")
    assert {s.context.trace_id for s in finished} == {compose.context.trace_id}
    stages = [s for s in finished if s.name.startswith("studio.") and s is not compose]
    assert sorted(s.name for s in stages) == [
        "studio.plan",
        "studio.scene.audio",
        "studio.scene.audio",
        "studio.scene.image",
        "studio.scene.image",
    ]
    assert all(s.parent.span_id == compose.context.span_id for s in stages)
    children = [s for s in finished if s.name == "family.call"]
    assert len(children) == 5
    stage_ids = {s.context.span_id for s in stages}
    assert all(c.parent.span_id in stage_ids for c in children)
    observed_stages = {
        t["stage"] for _, t in recorded.values["maestro_studio_stage_latency_seconds"]
    }
    assert observed_stages == {"plan", "image", "audio", "total"}


def test_every_shipped_config_declares_observability() -> None:
    for path in sorted(ROOT.glob("serve_config*.yaml")):
        settings = load(path)
        assert settings.tracing.enabled, path.name
        env = tracing_environment(settings.tracing)
        assert env["RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH"] == EXPORTER_IMPORT_PATH
        assert float(env["RAY_SERVE_TRACING_SAMPLING_RATIO"]) == (
            settings.tracing.sampling_ratio
        )


def test_config_refuses_what_would_half_work() -> None:
    with pytest.raises(ValueError, match="observability.tracing"):
        load({"tracing_config": {"enabled": True}, "applications": []})
    with pytest.raises(ValueError, match="endpoint is required"):
        ObservabilityConfig.model_validate({"tracing": {"exporter": "otlp_grpc"}})
    with pytest.raises(ValueError, match="sampling_ratio"):
        ObservabilityConfig.model_validate({"tracing": {"sampling_ratio": 2}})
    off = tracing_environment(ObservabilityConfig.model_validate({}).tracing)
    assert off["MAESTRO_TRACING_EXPORTER"] == "file"
    disabled = ObservabilityConfig.model_validate({"tracing": {"enabled": False}})
    assert tracing_environment(disabled.tracing) == {
        "RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH": ""
    }


def test_json_lines_exporter_writes_one_span_per_line(tmp_path) -> None:
    provider = TracerProvider()
    path = tmp_path / "spans.jsonl"
    exporter = tracing.JsonLinesSpanExporter(path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent"):
        with tracer.start_as_current_span("child", attributes={"k": 1}):
            pass
    exporter.shutdown()
    child, parent = [json.loads(line) for line in path.read_text().splitlines()]
    assert (child["name"], parent["name"]) == ("child", "parent")
    assert child["parent_span_id"] == parent["span_id"]
    assert child["trace_id"] == parent["trace_id"]
    assert child["attributes"] == {"k": 1}
    assert parent["parent_span_id"] is None


def test_exporter_hook_follows_the_derived_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAESTRO_TRACING_EXPORTER", "file")
    monkeypatch.setenv("MAESTRO_TRACING_FILE", str(tmp_path / "s.jsonl"))
    (processor,) = tracing.span_processors()
    processor.shutdown()
    assert (tmp_path / "s.jsonl").exists()
    monkeypatch.setenv("MAESTRO_TRACING_EXPORTER", "otlp_http")
    monkeypatch.setenv("MAESTRO_TRACING_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    (processor,) = tracing.span_processors()
    processor.shutdown()


class _Job:
    def __init__(self, request_id: str, images: int, steps: int) -> None:
        self.request = ImageRequest(
            prompt="p", num_images=images, steps=steps, request_id=request_id
        )
        self.cancelled = False


class _ImageEngine:
    """The real batcher around a pipeline stand-in that records its batches."""

    def __init__(self) -> None:
        self.ran: list[list[_Job]] = []
        self.batcher = KeyedBatcher(
            self._run,
            key=lambda job: job.request.steps,
            size=lambda job: job.request.num_images,
            config=BatchingConfig(max_batch_size=8, max_wait_ms=20),
        )

    async def _run(self, jobs: list[_Job]) -> None:
        self.ran.append(jobs)


async def test_image_batches_and_request_span(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    engine = _ImageEngine()
    sizes = watch_batches(engine)
    jobs = [_Job("a", 2, 4), _Job("b", 1, 4)]
    for job in jobs:
        engine.batcher.submit(job)
    while not engine.ran or engine.batcher.running:
        await asyncio.sleep(0.01)
    await engine.batcher.close()
    assert engine.ran == [jobs]  # one batch, and the engine's own callback ran
    assert recorded.values["maestro_image_batch_size"][0][0] == 3
    assert recorded.total("maestro_image_images") == 3
    assert recorded.total("maestro_image_denoising_steps") == 4
    assert len(recorded.values["maestro_image_steps_per_second"]) == 1
    result = ImageResult(images=(EncodedImage(b"x", "image/png", 64, 48, 1),))
    with image_span(
        "generate", jobs[0].request, default_steps=4, batch_sizes=sizes
    ) as on:
        on(result)
    (span,) = spans.get_finished_spans()
    assert span.name == "image.engine.generate"
    assert span.attributes["maestro.image.size"] == "64x48"
    assert span.attributes["maestro.image.batch_size"] == 3
    assert span.attributes["maestro.image.steps"] == 4
    assert span.attributes["maestro.image.num_images"] == 2


def test_voice_span_and_metrics(
    spans: InMemorySpanExporter, recorded: metrics.InMemoryRecorder
) -> None:
    request = SpeechRequest(text="Hello there. How are you?")
    info = AudioInfo(sample_rate=16000, channels=1, format="wav", duration_seconds=1.5)
    with voice_span("stream", request, max_segment_chars=120) as observer:
        for i in range(2):
            observer.chunk(SpeechChunk(b"", info, i, "s", i == 1))
    (span,) = spans.get_finished_spans()
    assert span.name == "voice.engine.stream"
    assert span.attributes["maestro.voice.segments"] == 2
    assert span.attributes["maestro.voice.audio_seconds"] == 3.0
    assert recorded.total("maestro_voice_audio_seconds") == 3.0
    assert len(recorded.values["maestro_voice_time_to_first_chunk_seconds"]) == 1
    assert len(recorded.values["maestro_voice_real_time_factor"]) == 1


def test_span_file_rotates_by_size_across_writers(tmp_path) -> None:
    path = tmp_path / "spans.jsonl"
    # Two exporters stand for two processes appending to one file.
    writers = [
        tracing.JsonLinesSpanExporter(path, max_bytes=4096, backups=2) for _ in range(2)
    ]
    provider = TracerProvider()
    for writer in writers:
        provider.add_span_processor(SimpleSpanProcessor(writer))
    tracer = provider.get_tracer("t")
    for i in range(200):
        with tracer.start_as_current_span(f"span-{i}"):
            pass
    for writer in writers:
        writer.shutdown()
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("lock"))
    assert files == ["spans.jsonl", "spans.jsonl.1", "spans.jsonl.2"]
    for name in files:  # every file holds whole lines, none far past the limit
        lines = (tmp_path / name).read_text().splitlines()
        assert all(json.loads(line)["name"].startswith("span-") for line in lines)
        assert (tmp_path / name).stat().st_size < 4096 + 1024
    newest = [json.loads(x)["name"] for x in path.read_text().splitlines()]
    assert "span-199" in newest
