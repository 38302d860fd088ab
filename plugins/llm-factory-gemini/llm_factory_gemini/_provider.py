"""The Gemini provider: transport only; translation lives in ``_encode``, ``_decode``, ``_errors``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar, cast

import httpx

from llm_factory_core import (
    AuthenticationError,
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ContentFilterError,
    EmbeddingRequest,
    EmbeddingResponse,
    ProviderError,
    ServerError,
    UpstreamConnectionError,
)
from llm_factory_core.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    decoded_stream,
    event_limit,
    json_loads,
)

from ._auth import TokenError, TokenSource, load_credentials
from ._decode import Blocked, StreamState, TurnFailed, decode_response
from ._embeddings import decode_embeddings, encode_embeddings, merge, texts_of
from ._encode import EncodeError, encode_request
from ._errors import classify_error
from ._rules import MODEL_RULES
from ._settings import (
    DEFAULT_API_BASE,
    GeminiSettings,
    auth_headers,
    embeddings_endpoint,
    endpoint,
    is_vertex,
    uses_google_auth,
    validate,
)
from ._stream import PayloadDecoder

__all__ = ["GeminiProvider"]

log = logging.getLogger("llm_factory_gemini")


class GeminiProvider(Provider):
    key = "gemini"
    Settings = GeminiSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=False, embeddings=True)
    default_api_base: ClassVar[str | None] = DEFAULT_API_BASE
    owned_by = "google"
    model_rules = MODEL_RULES

    settings: GeminiSettings

    @classmethod
    def otel_provider_name_for(cls, settings: ProviderSettings) -> str:
        return "gcp.vertex_ai" if is_vertex(cast(GeminiSettings, settings)) else "gcp.gemini"

    tokens: TokenSource | None
    """Refreshed Vertex tokens (``use_adc`` / ``credentials_file``); None for keys and fixed tokens."""

    def prepare(self) -> None:
        s = self.settings
        self._urls = (endpoint(s, stream=False), endpoint(s, stream=True))
        self._static_headers = auth_headers(s)
        self.tokens = None
        if uses_google_auth(s):
            use_adc, credentials_file = s.use_adc, s.credentials_file
            self.tokens = TokenSource(
                lambda: load_credentials(use_adc=use_adc, credentials_file=credentials_file),
                margin=s.token_refresh_margin,
            )

    async def _headers(self) -> dict[str, str]:
        if self.tokens is None:
            return self._static_headers
        try:
            token = await self.tokens.token()
        except TokenError as exc:
            cls = UpstreamConnectionError if exc.transient else AuthenticationError
            raise self.error(cls, str(exc), code="vertex_credentials") from None
        return {**self._static_headers, "authorization": f"Bearer {token}"}

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        assert isinstance(settings, GeminiSettings)
        validate(settings)

    # -- translation with this deployment's settings --------------------------------------------

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        try:
            return encode_request(request, self.settings)
        except EncodeError as exc:
            raise self.error(BadRequestError, str(exc), code="invalid_request") from None

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        cls, message, kwargs = classify_error(status, headers, body)
        return self.error(cls, message, **kwargs)

    def _payload_error(self, data: Any) -> ProviderError:
        """An error object inside a 200 reply or stream; its HTTP status is its ``code``."""
        cls, message, kwargs = classify_error(None, httpx.Headers(), data)
        return self.error(cls, message, **kwargs)

    def _blocked(self, blocked: Blocked) -> ProviderError:
        return self.error(ContentFilterError, str(blocked), status=400)

    def _turn_failed(self, failed: TurnFailed) -> ProviderError:
        # Retryable: before a stream commits, the router tries the next deployment.
        return self.error(ServerError, str(failed), code=failed.reason.lower())

    # -- the provider contract ------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        s = self.settings
        body = self.build_body(request)
        data = await self.post_json(self._urls[0], body, await self._headers())
        if isinstance(data, list) or (isinstance(data, dict) and "error" in data):
            raise self._payload_error(data)
        if not isinstance(data, dict):
            raise self.error(UpstreamConnectionError, "upstream reply is not a JSON object")
        try:
            return decode_response(data, s.model)
        except Blocked as blocked:
            raise self._blocked(blocked) from None
        except TurnFailed as failed:
            raise self._turn_failed(failed) from None

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = self.build_body(request)
        async with self.open_stream(self._urls[1], body, await self._headers()) as response:
            decoder = _Chunks(self, request.include_usage, event_limit(response))
            async for chunk in decoded_stream(response, decoder):
                yield chunk

    def _chunk(self, state: StreamState, text: bytes | str) -> ChatCompletionChunk | None:
        """One event's chunk (None: nothing to send); an error event raises the provider's error."""
        try:
            data = json_loads(text)
        except ValueError:
            log.warning("%s: skipped a malformed stream event", self.name)
            return None
        if isinstance(data, list) or (isinstance(data, dict) and "error" in data):
            raise self._payload_error(data)
        if not isinstance(data, dict):
            log.warning("%s: skipped a stream event that is not an object", self.name)
            return None
        try:
            return state.chunk(data)
        except Blocked as blocked:
            raise self._blocked(blocked) from None
        except TurnFailed as failed:
            raise self._turn_failed(failed) from None

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        s = self.settings
        if is_vertex(s):
            raise self.error(
                BadRequestError,
                "embeddings through Vertex AI are not supported by the gemini plugin yet: configure a "
                "Gemini API deployment (api_key, no vertex_project) for this embedding model",
                code="unsupported_operation",
            )
        try:
            texts = texts_of(request)
        except EncodeError as exc:
            raise self.error(BadRequestError, str(exc), code="invalid_request", param="input") from None
        size = s.embedding_batch_size
        headers = await self._headers()
        url = embeddings_endpoint(s)
        batches = []
        # One batch after the other: parallel batches would spend the per-minute quota in a burst.
        for start in range(0, len(texts), size):
            chunk = texts[start : start + size]
            body = encode_embeddings(chunk, request, s.model.removeprefix("models/"), s.embedding_task_type)
            data = await self.post_json(url, body, headers)
            if isinstance(data, list) or (isinstance(data, dict) and "error" in data):
                raise self._payload_error(data)
            try:
                batches.append(decode_embeddings(data, len(chunk), start, s.normalize_embeddings))
            except ValueError as exc:
                raise self.error(ServerError, str(exc)) from None
        return merge(batches, s.model.removeprefix("models/"))


class _Chunks:
    """The stream's ``ChunkDecoder``: each read's events as chunks (``decoded_stream`` serves them
    to library callers, and lets the gateway splice the stream)."""

    __slots__ = ("include_usage", "payloads", "provider", "state")

    done = False  # a Gemini stream ends with its body

    def __init__(self, provider: GeminiProvider, include_usage: bool, max_event: int) -> None:
        self.provider = provider
        self.include_usage = include_usage
        self.payloads = PayloadDecoder(max_event)
        self.state = StreamState(provider.settings.model)

    def feed(self, piece: bytes, out: list[ChatCompletionChunk]) -> None:
        for text in self.payloads.feed(piece):
            if (chunk := self.provider._chunk(self.state, text)) is not None:
                out.append(chunk)

    def end(self, out: list[ChatCompletionChunk]) -> None:
        for text in self.payloads.end():
            if (chunk := self.provider._chunk(self.state, text)) is not None:
                out.append(chunk)
        if not self.state.finished:
            raise self.provider.error(UpstreamConnectionError, "upstream closed the stream before it finished")
        if self.include_usage and (usage := self.state.usage_chunk()) is not None:
            out.append(usage)
