"""The ingress layer under hostile calls: real gRPC on a free port, no Ray.

A minimal text "deployment" (its RPCs answer at once; the engines are covered
by their own tiers) is registered through `deployments.servicers`, exactly as
Ray registers the real ones, and called with the asyncio Python client and
raw channels: no key, wrong keys, bytes that are not protobuf, request ids
that cannot be metadata, quotas that run out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2

from deployments import ingress
from deployments.auth import quotas
from deployments.auth.config import AuthSettings, KeyEntry, Quotas
from deployments.auth.guard import Gate
from deployments.auth.keys import hash_key
from deployments.auth.quotas import MemoryStore
from deployments.health import health_response
from deployments.ingress import stream_rpc, unary_rpc
from deployments.launch import free_port
from deployments.servicers import (
    add_HealthServicer_to_server,
    add_TextServiceServicer_to_server,
)
from maestro import AsyncMaestroClient, MaestroRpcError, RetryPolicy
from maestro.v1 import text_pb2

KEY, TEXT_ONLY_KEY, LIMITED_KEY = "mae_full", "mae_text_stream", "mae_limited"


class EchoText:
    """Answers like the text family: one usage-carrying reply per call."""

    family = "text"
    List = Watch = None  # registered by the health servicer, never called

    @unary_rpc(text_pb2.GenerateTextResponse)
    async def GenerateText(
        self, request: text_pb2.GenerateTextRequest, request_id: str
    ) -> text_pb2.GenerateTextResponse:
        return text_pb2.GenerateTextResponse(
            text=request.prompt,
            request_id=request_id,
            usage=text_pb2.Usage(prompt_tokens=3, completion_tokens=4),
        )

    @stream_rpc
    async def StreamText(
        self, request: text_pb2.StreamTextRequest, request_id: str
    ) -> AsyncIterator[text_pb2.StreamTextResponse]:
        yield text_pb2.StreamTextResponse(text=request.prompt)

    @unary_rpc(health_pb2.HealthCheckResponse)
    async def Check(
        self, request: health_pb2.HealthCheckRequest, request_id: str
    ) -> health_pb2.HealthCheckResponse:
        return health_response(request, services=(), ready=True)


def _settings() -> AuthSettings:
    return AuthSettings(
        enabled=True,
        quota_store="memory",
        keys=(
            KeyEntry(name="full", sha256=hash_key(KEY)),
            KeyEntry(
                name="stream-only",
                sha256=hash_key(TEXT_ONLY_KEY),
                scopes=("text.StreamText",),
            ),
            KeyEntry(
                name="limited",
                sha256=hash_key(LIMITED_KEY),
                quotas=Quotas(requests_per_minute=2),
            ),
        ),
    )


@pytest.fixture
async def target(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    gate = Gate(_settings(), MemoryStore())
    monkeypatch.setattr(ingress, "gate", lambda: gate)
    server = grpc.aio.server()
    add_TextServiceServicer_to_server(EchoText(), server)
    add_HealthServicer_to_server(EchoText(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def _client(target: str, key: str | None, **kwargs: object) -> AsyncMaestroClient:
    return AsyncMaestroClient(target, timeout=10, api_key=key or "", **kwargs)  # type: ignore[arg-type]


async def test_a_known_key_is_served_and_a_missing_or_unknown_one_is_not(
    target: str,
) -> None:
    async with _client(target, KEY) as client:
        assert (await client.generate_text("hi")).text == "hi"
    for key in ("", "mae_wrong"):
        async with _client(target, key) as client:
            with pytest.raises(MaestroRpcError) as info:
                await client.generate_text("hi")
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert "full" not in info.value.details  # never names a key


async def test_health_stays_open_without_a_key(target: str) -> None:
    async with _client(target, None) as client:
        status = await client.health("text")
    assert status == health_pb2.HealthCheckResponse.SERVING


async def test_a_key_outside_its_scope_is_permission_denied(target: str) -> None:
    async with _client(target, TEXT_ONLY_KEY) as client:
        assert [c.text async for c in client.stream_text("x")] == ["x"]
        with pytest.raises(MaestroRpcError) as info:
            await client.generate_text("x")
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "text.GenerateText" in info.value.details


async def test_quota_rejections_carry_the_time_until_refill(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _client(target, LIMITED_KEY, retry=None) as client:
        await client.generate_text("1")
        await client.generate_text("2")
        with pytest.raises(MaestroRpcError) as info:
            await client.generate_text("3")
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "requests_per_minute" in info.value.details
    assert info.value.retry_after_s is not None
    # The refill time reported: within the window (a value, not a timing).
    assert 0 < info.value.retry_after_s <= quotas.WINDOW_S  # a value, not a timing


async def test_the_client_waits_out_a_quota_when_asked(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quotas, "WINDOW_S", 0.5)  # windows of half a second
    policy = RetryPolicy(wait_for_quota=True, attempts=10)
    async with _client(target, LIMITED_KEY, retry=policy) as client:
        texts = [(await client.generate_text(str(i))).text for i in range(5)]
    assert texts == ["0", "1", "2", "3", "4"]


async def test_bytes_that_are_not_protobuf_are_invalid_argument(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/maestro.v1.TextService/GenerateText")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(
                b"\xff\xff\xff\xff garbage",
                metadata=(("authorization", f"Bearer {KEY}"),),
                timeout=10,
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert "maestro.v1.GenerateTextRequest" in details
    assert "class" not in details and "DecodeError" not in details


@pytest.mark.parametrize("request_id", ['e"Len<#-1\x0b>', "日本語", "x" * 129])
async def test_request_ids_that_cannot_be_metadata_are_invalid_argument(
    target: str, request_id: str
) -> None:
    async with _client(target, KEY) as client:
        with pytest.raises(MaestroRpcError) as info:
            await client.generate_text("hi", request_id=request_id)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details.startswith("request_id")
    assert info.value.request_id  # the server's own id still comes back
