"""DeepSeek: OpenAI's wire format (the core's codec) plus what is DeepSeek's own.

* ``reasoning_content`` in messages and stream deltas, and DeepSeek's usage fields
  (``prompt_cache_hit_tokens``...), pass through untouched: the core's models keep unknown fields.
* Earlier assistant ``reasoning_content`` is kept or dropped as DeepSeek requires (``_history``).
* ``finish_reason: insufficient_system_resource`` is a retryable ``ServerError``, never a finish
  reason a caller sees: before a stream commits the router fails over, after it the stream ends
  with an explicit error.
* Keep-alives: blank lines before a JSON body are JSON whitespace; ``: keep-alive`` comments are
  dropped by the SSE decoder and, being bytes, reset the transport's read (between-chunks) timeout.
* Errors: 401 disables the key; 402 "Insufficient Balance" disables it with that reason
  (``InsufficientQuotaError``); 429, 500 and 503 cool it down; 400 and 422 fail at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

from llm_factory_core import ChatRequest, ServerError
from llm_factory_core.providers import (
    Capabilities,
    OpenAICompatibleProvider,
    OpenAIStreamState,
    ProviderSettings,
)

from ._history import ReasoningHistory, prepare_messages, thinking_mode

__all__ = ["DeepSeekProvider", "DeepSeekSettings", "INSUFFICIENT_SYSTEM_RESOURCE", "normalise_usage"]

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


class DeepSeekSettings(ProviderSettings):
    reasoning_history: ReasoningHistory = "auto"
    """What happens to ``reasoning_content`` of earlier assistant messages: ``auto`` keeps it
    only where DeepSeek requires it (thinking mode, stretches with tool calls) and drops it
    elsewhere; ``keep`` sends messages as given; ``strip`` always drops it."""


class DeepSeekProvider(OpenAICompatibleProvider):
    key = "deepseek"
    Settings = DeepSeekSettings
    capabilities = Capabilities(streaming=True, tools=True, vision=False, prefill=False)
    default_api_base: ClassVar[str | None] = "https://api.deepseek.com"
    owned_by = "deepseek"

    settings: DeepSeekSettings

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        if settings.api_key is None:
            raise ValueError("DeepSeek needs api_key (DEEPSEEK_API_KEYS in the environment)")

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super().build_body(request, stream=stream)
        body["messages"] = prepare_messages(body["messages"], self.settings.reasoning_history, thinking_mode(body))
        return body

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
        return data

    def adapt_chunk(self, data: dict[str, Any], state: OpenAIStreamState) -> dict[str, Any] | None:
        normalise_usage(data.get("usage"))
        return super().adapt_chunk(data, state)
