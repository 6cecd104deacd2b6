"""Typed sync and async clients; each call carries its `application` routing key.

Ray Serve's proxy routes a call to an application by the `application`
metadata key, so every method here sets it from the service it calls
(maestro.routing). Errors surface as `MaestroRpcError` (maestro.errors) with
the status code, the server's details and the request id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

import grpc

from maestro.auth import CACHE_MODES, CallMetadata, default_api_key
from maestro.errors import MaestroRpcError
from maestro.health_client import AsyncHealthMethods, HealthMethods
from maestro.image_client import AsyncImageMethods, ImageMethods
from maestro.models_client import AsyncModelAdminMethods, ModelAdminMethods
from maestro.retry import (
    NO_RETRY,
    RetryPolicy,
    acall_with_retry,
    call_with_retry,
    seeded_policy,
)
from maestro.routing import FAMILIES, routed_channel
from maestro.streams import aserver_stream, server_stream
from maestro.studio_client import AsyncStudioMethods, StudioMethods
from maestro.v1 import models_pb2, models_pb2_grpc, text_pb2, text_pb2_grpc
from maestro.voice_client import AsyncVoiceMethods, VoiceMethods

__all__ = [
    "FAMILIES",
    "AsyncMaestroClient",
    "MaestroClient",
    "MaestroRpcError",
    "RetryPolicy",
    "routed_channel",
]

DEFAULT_TARGET = "127.0.0.1:9000"
# Streams and images can be large; the server bounds what it sends.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
Msg = TypeVar("Msg")
Messages = Iterable[Mapping[str, str] | tuple[str, str]]


def _text_request(
    cls: type[Msg],
    prompt: str | None,
    messages: Messages | None,
    params: dict[str, Any],
) -> Msg:
    turns = [
        text_pb2.ChatMessage(**m)
        if isinstance(m, Mapping)
        else text_pb2.ChatMessage(role=m[0], content=m[1])
        for m in (messages or ())
    ]
    fields = {k: v for k, v in params.items() if v is not None}
    return cls(prompt=prompt or "", messages=turns, **fields)


def _cache_mode(mode: str) -> str:
    if mode not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {mode!r}")
    return mode


class MaestroClient(
    CallMetadata,
    HealthMethods,
    ImageMethods,
    VoiceMethods,
    StudioMethods,
    ModelAdminMethods,
):
    """Blocking client. `timeout` (seconds) is the default deadline per call.

    `retry`: how idempotent calls (ListModels, Health, seeded unary
    generations) retry UNAVAILABLE; `None` never retries (maestro.retry).
    `api_key`: sent as `authorization: Bearer <key>`; default MAESTRO_API_KEY,
    else ~/.maestro/api_key (maestro.auth); "" sends none.
    `cache`: "bypass" or "refresh" for every call (metadata x-maestro-cache);
    "" uses the server's response cache where it has one.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = 120.0,
        channel: grpc.Channel | None = None,
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 (frozen)
        api_key: str | None = None,
        cache: str = "",
    ) -> None:
        self.api_key = default_api_key() if api_key is None else api_key
        self.cache = _cache_mode(cache)
        self.channel = channel or grpc.insecure_channel(
            target, options=_CHANNEL_OPTIONS
        )
        self.timeout = timeout
        self.retry = retry or NO_RETRY
        self._text = text_pb2_grpc.TextServiceStub(self.channel)
        self._models = models_pb2_grpc.ModelServiceStub(self.channel)

    def __enter__(self) -> MaestroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def generate_text(
        self,
        prompt: str | None = None,
        *,
        messages: Messages | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> text_pb2.GenerateTextResponse:
        """Whole completion. `params`: any GenerateTextRequest field."""
        request = _text_request(text_pb2.GenerateTextRequest, prompt, messages, params)
        try:
            return call_with_retry(
                lambda t: self._text.GenerateText(
                    request,
                    timeout=t,
                    metadata=self._metadata("text", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise MaestroRpcError.from_rpc_error(error) from None

    def stream_text(
        self,
        prompt: str | None = None,
        *,
        messages: Messages | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Iterator[text_pb2.StreamTextResponse]:
        """Text deltas as they arrive; closing the iterator cancels the call."""
        request = _text_request(text_pb2.StreamTextRequest, prompt, messages, params)
        call = self._text.StreamText(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("text", self._deadline(timeout), request.model),
        )
        yield from server_stream(call)

    def list_models(
        self, families: Iterable[str] = FAMILIES
    ) -> list[models_pb2.ModelInfo]:
        """Every application's models, merged; absent applications are skipped."""
        models: list[models_pb2.ModelInfo] = []
        for family in families:
            try:
                reply = call_with_retry(
                    lambda t, f=family: self._models.ListModels(
                        models_pb2.ListModelsRequest(),
                        timeout=t,
                        metadata=self._metadata(f, t),
                    ),
                    self.retry,
                    self._deadline(None),
                )
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                    continue
                raise MaestroRpcError.from_rpc_error(error) from None
            models.extend(reply.models)
        return models


class AsyncMaestroClient(
    CallMetadata,
    AsyncHealthMethods,
    AsyncImageMethods,
    AsyncVoiceMethods,
    AsyncStudioMethods,
    AsyncModelAdminMethods,
):
    """asyncio client with the same methods as MaestroClient."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = 120.0,
        channel: grpc.aio.Channel | None = None,
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 (frozen)
        api_key: str | None = None,
        cache: str = "",
    ) -> None:
        self.api_key = default_api_key() if api_key is None else api_key
        self.cache = _cache_mode(cache)
        self.channel = channel or grpc.aio.insecure_channel(
            target, options=_CHANNEL_OPTIONS
        )
        self.timeout = timeout
        self.retry = retry or NO_RETRY
        self._text = text_pb2_grpc.TextServiceStub(self.channel)
        self._models = models_pb2_grpc.ModelServiceStub(self.channel)

    async def __aenter__(self) -> AsyncMaestroClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    def _deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    async def generate_text(
        self,
        prompt: str | None = None,
        *,
        messages: Messages | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> text_pb2.GenerateTextResponse:
        request = _text_request(text_pb2.GenerateTextRequest, prompt, messages, params)
        try:
            return await acall_with_retry(
                lambda t: self._text.GenerateText(
                    request,
                    timeout=t,
                    metadata=self._metadata("text", t, request.model),
                ),
                seeded_policy(self, request),
                self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise MaestroRpcError.from_rpc_error(error) from None

    async def stream_text(
        self,
        prompt: str | None = None,
        *,
        messages: Messages | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> AsyncIterator[text_pb2.StreamTextResponse]:
        request = _text_request(text_pb2.StreamTextRequest, prompt, messages, params)
        call = self._text.StreamText(
            request,
            timeout=self._deadline(timeout),
            metadata=self._metadata("text", self._deadline(timeout), request.model),
        )
        # aclosing: an early close of this stream cancels the call at once.
        async with aclosing(aserver_stream(call)) as messages:
            async for message in messages:
                yield message

    async def list_models(
        self, families: Iterable[str] = FAMILIES
    ) -> list[models_pb2.ModelInfo]:
        models: list[models_pb2.ModelInfo] = []
        for family in families:
            try:
                reply = await acall_with_retry(
                    lambda t, f=family: self._models.ListModels(
                        models_pb2.ListModelsRequest(),
                        timeout=t,
                        metadata=self._metadata(f, t),
                    ),
                    self.retry,
                    self._deadline(None),
                )
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                    continue
                raise MaestroRpcError.from_rpc_error(error) from None
            models.extend(reply.models)
        return models
