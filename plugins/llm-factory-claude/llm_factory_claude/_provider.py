"""The Claude provider: one codec (OpenAI <-> Anthropic Messages), two hosts (Bedrock, Anthropic)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from llm_factory_core import (
    AuthenticationError,
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ProviderError,
    ServerError,
    UpstreamConnectionError,
)
from llm_factory_core.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    json_dumps,
    mask_secret,
)

from ._codec import MessagesStreamState, RequestError, decode_message, encode_messages_request
from ._hosts import AnthropicHost, BedrockHost, Host
from ._json_mode import json_mode
from ._settings import ClaudeSettings, auth_kind, resolve_mode

__all__ = ["ClaudeProvider"]


class ClaudeProvider(Provider):
    """Claude on AWS Bedrock (InvokeModel with the Anthropic Messages body) or Anthropic's API."""

    key = "claude"
    Settings = ClaudeSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=True)
    owned_by = "anthropic"

    settings: ClaudeSettings

    def prepare(self) -> None:
        self.mode = resolve_mode(self.settings)
        self.host: Host = (
            AnthropicHost(self.settings, self._make_error)
            if self.mode == "anthropic"
            else BedrockHost(self.settings, self._make_error)
        )

    @classmethod
    def credential_label(cls, settings: ProviderSettings) -> str | None:
        assert isinstance(settings, ClaudeSettings)
        if settings.api_key is not None:
            return mask_secret(settings.api_key)
        if settings.aws_access_key_id:
            return mask_secret(settings.aws_access_key_id)
        return f"profile:{settings.aws_profile}" if settings.aws_profile else None

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        assert isinstance(settings, ClaudeSettings)
        s = settings
        if bool(s.aws_access_key_id) != bool(s.aws_secret_access_key):
            raise ValueError("aws_access_key_id and aws_secret_access_key must be given together")
        if s.aws_session_token and not s.aws_access_key_id:
            raise ValueError("aws_session_token needs aws_access_key_id and aws_secret_access_key")
        if resolve_mode(s) == "anthropic":
            aws = [f for f in ("aws_access_key_id", "aws_profile", "aws_region") if getattr(s, f)]
            if aws:
                raise ValueError(f"{', '.join(aws)} only apply to Bedrock, but this deployment uses Anthropic's API")
        elif s.api_key is not None and (s.aws_access_key_id or s.aws_profile):
            raise ValueError(
                "give either api_key (a Bedrock API key) or AWS credentials (keys or aws_profile), not both"
            )
        if s.default_max_tokens < 1:
            raise ValueError("default_max_tokens must be at least 1")

    # -- errors ---------------------------------------------------------------------------------

    def _make_error(self, cls: type[ProviderError], message: str, kwargs: dict[str, Any]) -> ProviderError:
        for secret in self._secrets():
            if secret and secret in message:
                message = message.replace(secret, mask_secret(secret))
        error = self.error(cls, message, **kwargs)
        if isinstance(error, AuthenticationError):
            self.host.rejected_credentials()
        return error

    def _secrets(self) -> list[str]:
        s = self.settings
        return [v.get_secret_value() for v in (s.aws_secret_access_key, s.aws_session_token) if v is not None]

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        cls, message, kwargs = self.host.classify(status, headers, body)
        return self._make_error(cls, message, kwargs)

    @property
    def auth_description(self) -> str:
        """How this deployment authenticates (for logs and docs; never a secret)."""
        return f"{self.mode}:{auth_kind(self.settings)}"

    # -- the provider contract ------------------------------------------------------------------

    async def _prepare(self, request: ChatRequest, *, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
        try:
            body = encode_messages_request(
                request,
                default_max_tokens=self.settings.default_max_tokens,
                allow_image_urls=self.host.allow_image_urls,
            )
        except RequestError as exc:
            raise self.error(BadRequestError, str(exc)) from None
        body = self.host.finish_body(body, request, stream=stream)
        return await self.host.url(stream=stream), body, self.host.headers(stream=stream)

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        url, body, headers = await self._prepare(request, stream=False)
        data = await self.post_json(url, body, headers, auth=await self.host.auth())
        if isinstance(data, dict) and data.get("type") == "error":
            raise self.parse_error(500, httpx.Headers(), json_dumps(data))
        try:
            return decode_message(data, model=self.settings.model, json_answer=json_mode(request))
        except ValueError:
            raise self.error(ServerError, "upstream sent a reply that is not a Claude message") from None

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        url, body, headers = await self._prepare(request, stream=True)
        state = MessagesStreamState(
            self.settings.model, include_usage=request.include_usage, json_answer=json_mode(request)
        )
        async with self.open_stream(url, body, headers, auth=await self.host.auth()) as response:
            async for event in self.host.events(response):
                for chunk in state.feed(event):
                    yield chunk
                if state.finished:
                    return
            rest = state.close()
            if rest is None:
                raise self.error(UpstreamConnectionError, "upstream closed the stream before it finished")
            for chunk in rest:
                yield chunk
