"""DeepSeek: OpenAI's wire format (the core's codec) plus what is DeepSeek's own.

* ``reasoning_content`` in messages and stream deltas, and DeepSeek's usage fields
  (``prompt_cache_hit_tokens``...), pass through untouched: the core's models keep unknown fields.
* Earlier assistant ``reasoning_content`` is restored, kept or dropped as DeepSeek requires, and
  other providers' fields are dropped (``_history``, ``_foreign``); the reasoning of a turn that
  called tools is remembered by tool-call id for clients that drop it (``_memory``).
* ``reasoning_effort: "none"`` turns thinking off (``thinking: {"type": "disabled"}``); any other
  effort turns it on for ``deepseek-chat``, the one model that does not think by default. DeepSeek
  maps the other OpenAI values itself (minimal/low -> low, medium/high/xhigh -> high, max -> max).
* ``max_completion_tokens`` becomes ``max_tokens`` (``_rules``).
* A final assistant message is continued with chat prefix completion (``_prefix``), so DeepSeek
  can finish a broken stream (``prefill``).
* ``finish_reason: insufficient_system_resource`` is a retryable ``ServerError``, never a finish
  reason a caller sees: before a stream commits the router fails over, after it the stream ends
  with an explicit error.
* Keep-alives: blank lines before a JSON body are JSON whitespace; ``: keep-alive`` comments are
  dropped by the SSE decoder and, being bytes, reset the transport's read (between-chunks) timeout.
* Streams: with ``stream_options.include_usage`` the usage DeepSeek puts on its finish chunk is
  moved to a last chunk with empty choices, as OpenAI sends it. The gateway forwards every other
  plain chunk as DeepSeek's bytes (``raw_sse``); the reasoning memory watches them as they pass.
* Errors: 401 disables the key; 402 "Insufficient Balance" disables it with that reason
  (``InsufficientQuotaError``); 429, 500 and 503 cool it down; 400 and 422 fail at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from llm_factory_core import ChatCompletion, ChatCompletionChunk, ChatRequest, ServerError
from llm_factory_core.providers import (
    Capabilities,
    OpenAICompatibleProvider,
    OpenAIStreamState,
    ProviderSettings,
)

from ._history import NON_THINKING_MODELS, ReasoningHistory, prepare_messages, thinking_mode
from ._memory import StreamReasoning, recall, remember_completion
from ._prefix import beta_base, prefix_index, with_prefix
from ._rules import DEEPSEEK_RULES

__all__ = [
    "DeepSeekProvider",
    "DeepSeekSettings",
    "INSUFFICIENT_SYSTEM_RESOURCE",
    "apply_reasoning_effort",
    "normalise_usage",
]

INSUFFICIENT_SYSTEM_RESOURCE = "insufficient_system_resource"


def normalise_usage(usage: Any) -> None:
    """Fill OpenAI's ``prompt_tokens_details.cached_tokens`` from DeepSeek's
    ``prompt_cache_hit_tokens`` where a reply has only the latter (older replies), so OpenAI
    clients see cache hits; DeepSeek's own fields stay as they are."""
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_cache_hit_tokens"), int):
        return
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        details = usage["prompt_tokens_details"] = {}
    details.setdefault("cached_tokens", usage["prompt_cache_hit_tokens"])


def apply_reasoning_effort(body: dict[str, Any]) -> None:
    """``reasoning_effort`` as DeepSeek's thinking toggle where it means one (in place): ``none``
    disables thinking (DeepSeek's Chat Completions format has no ``none`` effort), another effort
    enables it on ``deepseek-chat``. An explicit ``thinking`` from the caller always wins."""
    effort = body.get("reasoning_effort")
    if effort == "none":
        del body["reasoning_effort"]
        body.setdefault("thinking", {"type": "disabled"})
    elif effort is not None and "thinking" not in body and body.get("model") in NON_THINKING_MODELS:
        body["thinking"] = {"type": "enabled"}


class DeepSeekSettings(ProviderSettings):
    reasoning_history: ReasoningHistory = "auto"
    """What happens to ``reasoning_content`` of earlier assistant messages: ``auto`` sends it
    where DeepSeek requires it (thinking mode, stretches with tool calls: the caller's, else the
    remembered one, else ``""``) and drops it elsewhere; ``keep`` sends it as given; ``strip``
    always drops it."""


class DeepSeekProvider(OpenAICompatibleProvider):
    key = "deepseek"
    Settings = DeepSeekSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=False, prefill=True)
    default_api_base: ClassVar[str | None] = "https://api.deepseek.com"
    owned_by = "deepseek"
    model_rules = DEEPSEEK_RULES
    otel_provider_name: ClassVar[str | None] = "deepseek"  # OpenTelemetry's GenAI name (gen_ai.provider.name)
    raw_sse: ClassVar[bool] = True  # plain chunks pass through; usage and other chunks are fixed up

    settings: DeepSeekSettings

    def prepare(self) -> None:
        super().prepare()
        self._chat_url = self.chat_url()
        self._beta_url = beta_base(self._chat_url[: -len(self.chat_path)]) + self.chat_path

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        if settings.api_key is None:
            raise ValueError("DeepSeek needs api_key (DEEPSEEK_API_KEYS in the environment)")

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super().build_body(request, stream=stream)
        apply_reasoning_effort(body)
        messages = with_prefix(body["messages"])
        body["messages"] = prepare_messages(
            messages,
            self.settings.reasoning_history,
            thinking_mode(body),
            recall=recall,
            prefix_index=prefix_index(messages),
        )
        return body

    def url_for(self, body: dict[str, Any]) -> str:
        """The beta endpoint for chat prefix completion, the usual one otherwise."""
        return self._beta_url if prefix_index(body["messages"]) is not None else self._chat_url

    def map_finish_reason(self, reason: Any) -> Any:
        if reason == INSUFFICIENT_SYSTEM_RESOURCE:
            raise self.error(
                ServerError,
                "DeepSeek stopped the reply: insufficient system resources (server busy)",
                code=INSUFFICIENT_SYSTEM_RESOURCE,
            )
        return super().map_finish_reason(reason)

    def adapt_completion(self, data: dict[str, Any]) -> dict[str, Any]:
        normalise_usage(data.get("usage"))
        remember_completion(data)
        return data

    def adapt_chunk(
        self, data: dict[str, Any], state: OpenAIStreamState
    ) -> dict[str, Any] | list[dict[str, Any]] | None:
        normalise_usage(data.get("usage"))
        if isinstance(state, DeepSeekStreamState):
            state.reasoning.observe(data)
        adapted = super().adapt_chunk(data, state)
        if (
            isinstance(adapted, dict)
            and isinstance(state, DeepSeekStreamState)
            and state.split_usage
            and adapted.get("usage") is not None
            and adapted["choices"]
        ):
            # DeepSeek puts usage on the finish chunk; OpenAI's include_usage contract is a last
            # chunk with empty choices carrying it.
            return [{**adapted, "usage": None}, {**adapted, "choices": []}]
        return adapted

    def raw_passthrough(self, data: dict[str, Any], state: OpenAIStreamState) -> bool:
        if data.get("usage") is not None:
            return False  # normalised, and split off the finish chunk, by adapt_chunk
        if isinstance(state, DeepSeekStreamState):
            state.reasoning.observe(data)
        return True

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        body = self.build_body(request, stream=False)
        data = await self.post_json(self.url_for(body), body, self.auth_headers())
        return self.parse_completion(data)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = self.build_body(request, stream=True)
        state = DeepSeekStreamState(self.settings.model, split_usage=request.include_usage)
        async with self.open_stream(self.url_for(body), body, self.auth_headers()) as response:
            async for chunk in self.decode_stream(response, state):
                yield chunk


class DeepSeekStreamState(OpenAIStreamState):
    """A stream's reasoning (remembered when a choice that called tools finishes) and whether the
    caller asked for the usage as a chunk of its own."""

    __slots__ = ("reasoning", "split_usage")

    def __init__(self, model: str, *, split_usage: bool) -> None:
        super().__init__(model)
        self.reasoning = StreamReasoning()
        self.split_usage = split_usage
