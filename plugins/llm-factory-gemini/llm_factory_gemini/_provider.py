"""The Gemini provider: transport only; translation lives in ``_encode``, ``_decode``, ``_errors``."""

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
    ContentFilterError,
    ProviderError,
    UpstreamConnectionError,
)
from llm_factory_core.providers import Capabilities, Provider, ProviderSettings, json_loads

from ._decode import Blocked, StreamState, decode_response
from ._encode import EncodeError, encode_request
from ._errors import classify_error
from ._settings import DEFAULT_API_BASE, GeminiSettings, auth_headers, endpoint, validate
from ._stream import aiter_payloads

__all__ = ["GeminiProvider"]

log = logging.getLogger("llm_factory_gemini")


class GeminiProvider(Provider):
    key = "gemini"
    Settings = GeminiSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=False)
    default_api_base: ClassVar[str | None] = DEFAULT_API_BASE
    owned_by = "google"

    settings: GeminiSettings

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

    # -- the provider contract ------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        s = self.settings
        data = await self.post_json(endpoint(s, stream=False), self.build_body(request), auth_headers(s))
        if isinstance(data, list) or (isinstance(data, dict) and "error" in data):
            raise self._payload_error(data)
        if not isinstance(data, dict):
            raise self.error(UpstreamConnectionError, "upstream reply is not a JSON object")
        try:
            return decode_response(data, s.model, signature_in_id=s.thought_signature_in_id)
        except Blocked as blocked:
            raise self._blocked(blocked) from None

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        s = self.settings
        state = StreamState(s.model, signature_in_id=s.thought_signature_in_id)
        async with self.open_stream(endpoint(s, stream=True), self.build_body(request), auth_headers(s)) as response:
            async for text in aiter_payloads(response):
                try:
                    data = json_loads(text)
                except ValueError:
                    log.warning("%s: skipped a malformed stream event", self.name)
                    continue
                if isinstance(data, list) or (isinstance(data, dict) and "error" in data):
                    raise self._payload_error(data)
                if not isinstance(data, dict):
                    log.warning("%s: skipped a stream event that is not an object", self.name)
                    continue
                try:
                    chunk = state.chunk(data)
                except Blocked as blocked:
                    raise self._blocked(blocked) from None
                if chunk is not None:
                    yield chunk
        if not state.finished:
            raise self.error(UpstreamConnectionError, "upstream closed the stream before it finished")
        if request.include_usage and (usage := state.usage_chunk()) is not None:
            yield usage
