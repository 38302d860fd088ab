"""``QwenProvider``: DashScope's native API, or its OpenAI-compatible mode through the core's
OpenAI codec (this class *is* an ``OpenAICompatibleProvider``; compatible mode is its parent's
code path unchanged). Translation lives in ``_native_*``; this module is transport only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from llm_factory_core import (
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ProviderError,
    ServerError,
    UpstreamConnectionError,
)
from llm_factory_core.providers import (
    Capabilities,
    OpenAICompatibleProvider,
    OpenAIStreamState,
    ProviderSettings,
    ServerSentEvent,
    SSEReader,
    classify_openai_error,
    decoded_stream,
    event_limit,
    json_dumps,
    json_loads,
)

from ._aggregate import ChunkAggregator
from ._embeddings import (
    EMBEDDINGS_PATH,
    Batch,
    batch_limit,
    decode_compatible_batch,
    decode_native_batch,
    embedding_texts,
    encode_compatible_batch,
    encode_native_batch,
    merge,
)
from ._native_errors import classify_native_error, refine_compatible_error, status_for_code, unwrap_sse_error
from ._native_request import (
    MULTIMODAL_PATH,
    TEXT_PATH,
    encode_native_request,
    native_headers,
    outbound_messages,
    wants_multimodal,
    with_partial,
)
from ._native_response import NativeStreamState, decode_native_completion
from ._rules import QWEN_RULES
from ._settings import DEFAULT_COMPATIBLE_BASE, DEFAULT_NATIVE_BASE, QwenSettings, api_mode
from ._thinking import plan_thinking

__all__ = ["QwenProvider"]

log = logging.getLogger("llm_factory_qwen")


def _comment_status(event: ServerSentEvent) -> int | None:
    """``:HTTP_STATUS/429`` -> 429."""
    for comment in event.comments:
        name, _, value = comment.partition("/")
        if name.strip() == "HTTP_STATUS" and value.strip().isdigit():
            return int(value.strip())
    return None


def _cache_writes(usage: Any) -> None:
    """Compatible mode's explicit-cache writes (``prompt_tokens_details.cache_creation_input_tokens``)
    also as OpenAI's ``cache_write_tokens``, in place (the decoded reply is ours to change)."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    if isinstance(details, dict) and isinstance(details.get("cache_creation_input_tokens"), int):
        details.setdefault("cache_write_tokens", details["cache_creation_input_tokens"])


class QwenProvider(OpenAICompatibleProvider):
    """Alibaba Cloud DashScope (Model Studio): Qwen models."""

    key = "qwen"
    Settings = QwenSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=True, embeddings=True)
    default_api_base: ClassVar[str | None] = DEFAULT_NATIVE_BASE
    owned_by = "qwen"
    model_rules = QWEN_RULES
    raw_sse: ClassVar[bool] = True  # compatible mode's plain chunks may pass through (``raw_passthrough``)

    settings: QwenSettings

    def prepare(self) -> None:
        self.mode = api_mode(self.settings)
        default = DEFAULT_NATIVE_BASE if self.mode == "native" else DEFAULT_COMPATIBLE_BASE
        self.base = (self.settings.api_base or default).rstrip("/")

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        assert isinstance(settings, QwenSettings)
        api_mode(settings)
        if settings.api_key is None and settings.api_base is None:
            raise ValueError("qwen needs api_key (a DashScope API key; env QWEN_API_KEYS)")

    def chat_url(self) -> str:
        """Compatible mode's URL (``mode: compatible`` without api_base means Beijing's)."""
        return self.base + self.chat_path

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """Compatible mode: OpenAI's body without other providers' message fields, with Partial
        Mode for a final assistant message, and ``reasoning_effort`` as DashScope's
        ``enable_thinking`` / ``thinking_budget`` (the caller's own values win)."""
        body = super().build_body(request, stream=stream)
        body["messages"] = with_partial(outbound_messages(body["messages"]))
        body.pop("reasoning_effort", None)
        for key, value in plan_thinking(request, self.settings.model, stream=stream).params.items():
            body.setdefault(key, value)
        return body

    # -- native request -------------------------------------------------------------------------

    def _native(self, request: ChatRequest, *, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
        s = self.settings
        multimodal = wants_multimodal(s.model, request.messages, s.multimodal)
        try:
            body = encode_native_request(request, s.model, stream=stream, multimodal=multimodal)
        except ValueError as exc:
            raise self.error(BadRequestError, str(exc)) from None
        key = s.api_key.get_secret_value() if s.api_key is not None else None
        headers = native_headers(key, stream=stream, workspace=s.workspace)
        return self.base + (MULTIMODAL_PATH if multimodal else TEXT_PATH), body, headers

    # -- errors ---------------------------------------------------------------------------------

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        # A streamed request's error may come as SSE (``event:error`` / ``:HTTP_STATUS/400`` /
        # ``data:{...}``): read the event, never show the raw frame.
        status, body, native_shaped = unwrap_sse_error(status, body)
        if self.mode == "compatible" and not native_shaped:
            cls, message, kwargs = classify_openai_error(status, headers, body)
            return self.error(refine_compatible_error(cls, message), message, **kwargs)
        cls, message, kwargs = classify_native_error(status, headers, body)
        return self.error(cls, message, **kwargs)

    def raw_passthrough(self, data: dict[str, Any], state: OpenAIStreamState) -> bool:
        # An event with usage goes through adapt_chunk: ``_cache_writes`` adds OpenAI's field.
        return data.get("usage") is None

    def adapt_chunk(
        self, data: dict[str, Any], state: OpenAIStreamState
    ) -> dict[str, Any] | list[dict[str, Any]] | None:
        """Compatible mode: a native-shaped error event (``{"code", "message"}``, no choices)
        inside a 200 stream is an error, not an empty chunk to skip."""
        if "choices" not in data and data.get("code") and data.get("message"):
            status = status_for_code(data.get("code"))
            cls, message, kwargs = classify_native_error(status, httpx.Headers(), data)
            raise self.error(cls, message, **kwargs)
        _cache_writes(data.get("usage"))
        return super().adapt_chunk(data, state)

    def adapt_completion(self, data: dict[str, Any]) -> dict[str, Any]:
        _cache_writes(data.get("usage"))
        return super().adapt_completion(data)

    def error_from_payload(self, data: dict[str, Any]) -> ProviderError:
        # Compatible mode's in-stream ``{"error": {"code": "invalid_api_key"}}`` carries no status;
        # the core's default (500, "retry elsewhere") would hide a dead key or a rate limit.
        error = data.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        return self.parse_error(status_for_code(code), httpx.Headers(), json_dumps(data))

    def _event_error(self, event: ServerSentEvent, data: Any) -> ProviderError:
        body = data if isinstance(data, dict) else {"message": event.data[:300]}
        status = _comment_status(event) or status_for_code(body.get("code"))
        cls, message, kwargs = classify_native_error(status, httpx.Headers(), body)
        return self.error(cls, message, **kwargs)

    # -- the provider contract ------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        if plan_thinking(request, self.settings.model, stream=False).stream_upstream:
            return await self._chat_by_stream(request)
        if self.mode == "compatible":
            return await super().chat(request)
        url, body, headers = self._native(request, stream=False)
        data = await self.post_json(url, body, headers)
        if not isinstance(data, dict) or "output" not in data:
            if isinstance(data, dict) and data.get("code"):
                cls, message, kwargs = classify_native_error(status_for_code(str(data["code"])), {}, data)
                raise self.error(cls, message, **kwargs)
            raise self.error(ServerError, "DashScope reply has no output", status=200)
        return ChatCompletion.model_validate(decode_native_completion(data, self.settings.model))

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Text embeddings on either API, in batches within the model's limit, one after the other
        (parallel batches would spend the per-minute quota in a burst)."""
        try:
            texts = embedding_texts(request)
        except ValueError as exc:
            raise self.error(BadRequestError, str(exc), code="invalid_request", param="input") from None
        model = self.settings.model
        size = self.settings.embedding_batch_size or batch_limit(model)
        batches = []
        for start in range(0, len(texts), size):
            batches.append(await self._embed_batch(texts[start : start + size], request, start))
        return merge(batches, model)

    async def _embed_batch(self, texts: list[str], request: EmbeddingRequest, offset: int) -> Batch:
        model = self.settings.model
        if self.mode == "compatible":
            data = await self.post_json(
                self.base + "/embeddings", encode_compatible_batch(texts, request, model), self.auth_headers()
            )
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                raise self.error_from_payload(data)
        else:
            s = self.settings
            key = s.api_key.get_secret_value() if s.api_key is not None else None
            headers = native_headers(key, stream=False, workspace=s.workspace)
            data = await self.post_json(
                self.base + EMBEDDINGS_PATH, encode_native_batch(texts, request, model), headers
            )
            if isinstance(data, dict) and data.get("code") and "output" not in data:
                cls, message, kwargs = classify_native_error(status_for_code(data["code"]), {}, data)
                raise self.error(cls, message, **kwargs)
        try:
            if self.mode == "compatible":
                return decode_compatible_batch(data, len(texts), offset, model)
            return decode_native_batch(data, len(texts), offset)
        except ValueError as exc:
            raise self.error(ServerError, str(exc), status=200) from None

    async def _chat_by_stream(self, request: ChatRequest) -> ChatCompletion:
        """A stream-only model, or a call with thinking on (see ``_thinking``), made without
        ``stream``: stream upstream, return the aggregated reply (with its usage)."""
        options = {**(request.stream_options or {}), "include_usage": True}
        streamed = request.model_copy(update={"stream": True, "stream_options": options})
        aggregator = ChunkAggregator()
        async for chunk in self.stream(streamed):
            aggregator.add(chunk)
        if not aggregator.count:
            raise self.error(ServerError, "upstream stream ended without a chunk", status=200)
        return aggregator.result()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        if self.mode == "compatible":
            async for chunk in super().stream(request):
                yield chunk
            return
        url, body, headers = self._native(request, stream=True)
        async with self.open_stream(url, body, headers) as response:
            decoder = _NativeChunks(self, request.include_usage, event_limit(response))
            async for chunk in decoded_stream(response, decoder):
                yield chunk

    def _native_chunk(self, state: NativeStreamState, event: ServerSentEvent) -> ChatCompletionChunk | None:
        """One native event's chunk (None: nothing to send). ``event:error`` (on a 200) raises a
        typed error."""
        if not event.data:
            return None
        try:
            data = json_loads(event.data)
        except ValueError:
            data = None
        status = _comment_status(event)
        if event.event == "error" or (status is not None and status >= 400):
            raise self._event_error(event, data)
        if not isinstance(data, dict):
            log.warning("%s: skipped a malformed stream event", self.name)
            return None
        if data.get("code") and "output" not in data:
            raise self._event_error(event, data)
        chunk = state.feed(data)
        return None if chunk is None else ChatCompletionChunk.model_validate(chunk)


class _NativeChunks:
    """A native stream's ``ChunkDecoder``: complete when every choice has a finish reason and the
    connection closes (``decoded_stream`` serves it to library callers, and lets the gateway
    splice the stream)."""

    __slots__ = ("events", "include_usage", "provider", "state")

    done = False  # a native stream ends with its body

    def __init__(self, provider: QwenProvider, include_usage: bool, max_event: int) -> None:
        self.provider = provider
        self.include_usage = include_usage
        self.events = SSEReader(max_event)
        self.state = NativeStreamState(provider.settings.model)

    def feed(self, piece: bytes, out: list[ChatCompletionChunk]) -> None:
        self._add(self.events.feed(piece), out)

    def end(self, out: list[ChatCompletionChunk]) -> None:
        self._add(self.events.end(), out)
        if not self.state.finished:
            raise self.provider.error(UpstreamConnectionError, "upstream closed the stream before it finished")
        if self.include_usage and (usage := self.state.usage_chunk()) is not None:
            out.append(ChatCompletionChunk.model_validate(usage))

    def _add(self, events: list[ServerSentEvent], out: list[ChatCompletionChunk]) -> None:
        for event in events:
            if (chunk := self.provider._native_chunk(self.state, event)) is not None:
                out.append(chunk)
