"""Chat prefix completion (beta): DeepSeek continues a final assistant message.

DeepSeek's rule (api-docs.deepseek.com/guides/chat_prefix_completion): the last message is an
assistant message with ``"prefix": true``, and the request goes to the beta base URL
``https://api.deepseek.com/beta``. The router's stream continuation appends exactly such a message
(the text already sent), so a DeepSeek deployment can finish a broken stream. A caller opts out
with ``"prefix": false`` on the message.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BETA_PATH", "beta_base", "prefix_index", "with_prefix"]

BETA_PATH = "/beta"


def with_prefix(messages: list[Any]) -> list[Any]:
    """A final assistant message without tool calls gets ``"prefix": true`` unless the caller
    set ``prefix``; the caller's dict is not changed."""
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant" or last.get("tool_calls") or "prefix" in last:
        return messages
    return [*messages[:-1], {**last, "prefix": True}]


def prefix_index(messages: list[Any]) -> int | None:
    """The index of a final assistant message sent as a prefix, or None."""
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "assistant" and last.get("prefix") is True:
        return len(messages) - 1
    return None


def beta_base(base: str) -> str:
    """The beta base URL for an OpenAI-format base: ``https://api.deepseek.com`` and
    ``https://api.deepseek.com/v1`` both become ``https://api.deepseek.com/beta``; a base that
    already is the beta one stays."""
    base = base.rstrip("/")
    if base.endswith(BETA_PATH):
        return base
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + BETA_PATH
