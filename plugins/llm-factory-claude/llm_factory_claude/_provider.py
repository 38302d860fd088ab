"""The Claude provider: one codec (OpenAI <-> Anthropic Messages), two hosts (Bedrock, Anthropic)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

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
    decoded_stream,
    event_limit,
    json_dumps,
    mask_secret,
)

from ._aws import scrub_sigv4
from ._codec import RequestError, encode_messages_request, json_answer_mode
from ._decode import MessagesStreamState, decode_message
from ._hosts import AnthropicHost, BedrockHost, EventReader, Host, request_betas
from ._rules import CLAUDE_RULES
from ._settings import ClaudeSettings, auth_kind, resolve_mode

__all__ = ["ClaudeProvider"]

# anthropic-sdk-python types/message_count_tokens_params.py: the prompt's fields, no sampling ones.
_COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control",
     "mcp_servers", "context_management"}
)  # fmt: skip


class ClaudeProvider(Provider):
    """Claude on AWS Bedrock (InvokeModel with the Anthropic Messages body) or Anthropic's API."""

    key = "claude"
    Settings = ClaudeSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=True)
    owned_by = "anthropic"
    model_rules = CLAUDE_RULES

    settings: ClaudeSettings

    @classmethod
    def otel_provider_name_for(cls, settings: ProviderSettings) -> str:
        return "anthropic" if resolve_mode(cast(ClaudeSettings, settings)) == "anthropic" else "aws.bedrock"

    def prepare(self) -> None:
        self.mode = resolve_mode(self.settings)
        self.host: Host = (
            AnthropicHost(self.settings, self._make_error)
            if self.mode == "anthropic"
            else BedrockHost(self.settings, self._make_error)
        )
        self.add_secret(self.settings.aws_access_key_id)  # a plain str field, not a SecretStr
        for secret in self.host.secrets:  # ANTHROPIC_API_KEY / AWS_BEARER_TOKEN_BEDROCK fallbacks
            self.add_secret(secret)

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
        if s.default_max_tokens is not None and s.default_max_tokens < 1:
            raise ValueError("default_max_tokens must be at least 1")

    # -- errors ---------------------------------------------------------------------------------

    def _make_error(self, cls: type[ProviderError], message: str, kwargs: dict[str, Any]) -> ProviderError:
        for secret in self.host.secrets:  # credentials the AWS chain resolved (or refreshed)
            self.add_secret(secret)
        code = kwargs.get("code")
        message = scrub_sigv4(self.mask(message), code if isinstance(code, str) else None)
        error = self.error(cls, message, **kwargs)
        if isinstance(error, AuthenticationError):
            self.host.rejected_credentials()
        return error

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
                model=self.settings.model,
                structured_output=self.settings.structured_output,
            )
        except RequestError as exc:
            raise self.error(BadRequestError, str(exc)) from None
        betas = request_betas(body)  # a request's own flags: a header on Anthropic, the body on Bedrock
        body = self.host.finish_body(body, request, stream=stream)
        return await self.host.url(stream=stream), body, self.host.headers(stream=stream, betas=betas)

    def _json_answer(self, request: ChatRequest) -> Any:
        return json_answer_mode(request, model=self.settings.model, structured_output=self.settings.structured_output)

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        url, body, headers = await self._prepare(request, stream=False)
        data = await self.post_json(url, body, headers, auth=await self.host.auth())
        if isinstance(data, dict) and data.get("type") == "error":
            raise self.parse_error(500, httpx.Headers(), json_dumps(data))
        try:
            return decode_message(data, model=self.settings.model, json_answer=self._json_answer(request))
        except ValueError:
            raise self.error(ServerError, "upstream sent a reply that is not a Claude message") from None

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """The request's input tokens by Anthropic's own counter (``POST /v1/messages/count_tokens``,
        which takes the Messages body's prompt fields only); None on Bedrock (no counter here)."""
        if not isinstance(self.host, AnthropicHost):
            return None
        url, body, headers = await self._prepare(request, stream=False)
        counted = {k: v for k, v in body.items() if k in _COUNT_FIELDS}
        data = await self.post_json(url + "/count_tokens", counted, headers, auth=await self.host.auth())
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise self.error(ServerError, "upstream sent a count_tokens reply without input_tokens")
        return int(data["input_tokens"])

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        url, body, headers = await self._prepare(request, stream=True)
        state = MessagesStreamState(
            self.settings.model, include_usage=request.include_usage, json_answer=self._json_answer(request)
        )
        async with self.open_stream(url, body, headers, auth=await self.host.auth()) as response:
            decoder = _Chunks(self, self.host.reader(event_limit(response)), state)
            async for chunk in decoded_stream(response, decoder):
                yield chunk


class _Chunks:
    """The stream's ``ChunkDecoder``: the host's events of each read as chunks, up to
    ``message_stop`` (``decoded_stream`` serves them to library callers, and lets the gateway
    splice the stream)."""

    __slots__ = ("done", "events", "provider", "state")

    def __init__(self, provider: ClaudeProvider, events: EventReader, state: MessagesStreamState) -> None:
        self.provider = provider
        self.events = events
        self.state = state
        self.done = False

    def feed(self, piece: bytes, out: list[ChatCompletionChunk]) -> None:
        events: list[dict[str, Any]] = []
        try:
            self.events.feed(piece, events)
        finally:  # an error in the stream: the events before it still count
            self._add(events, out)

    def end(self, out: list[ChatCompletionChunk]) -> None:
        events: list[dict[str, Any]] = []
        try:
            self.events.end(events)
        finally:
            self._add(events, out)
        if self.done:
            return
        rest = self.state.close()
        if rest is None:
            raise self.provider.error(UpstreamConnectionError, "upstream closed the stream before it finished")
        out.extend(rest)

    def _add(self, events: list[dict[str, Any]], out: list[ChatCompletionChunk]) -> None:
        state = self.state
        for event in events:
            if self.done:
                return  # after message_stop: nothing more is read
            out.extend(state.feed(event))
            self.done = state.finished
