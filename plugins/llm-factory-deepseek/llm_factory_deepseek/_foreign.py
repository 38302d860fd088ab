"""Other providers' fields dropped from a history before it goes to DeepSeek.

A conversation may have started on another provider, or come through a client built for one:
Claude's ``thinking_blocks``, Gemini's ``tool_calls[].extra_content``, Anthropic-style
``cache_control``, a streamed ``index`` on a tool call, raw ``thinking`` content parts. DeepSeek's
parser is not observed to refuse unknown message *fields* (OpenAI SDK dumps with ``refusal`` /
``annotations`` pass), but it refuses unknown content-part types (400 ``messages[4].content:
unknown variant `tool_reference`, expected `text```, zhukunpenglinyutong/jetbrains-cc-gui#591),
and forwarding another provider's signed state is never useful. So each message keeps only what
DeepSeek's Create Chat Completion reference defines for its role
(api-docs.deepseek.com/api/create-chat-completion): everything else is dropped.
"""

from __future__ import annotations

from typing import Any

from llm_factory_core.providers import MessageFields

__all__ = ["DEEPSEEK_MESSAGE_FIELDS", "clean_message"]

DEEPSEEK_MESSAGE_FIELDS = MessageFields(
    roles={
        "system": frozenset({"role", "content", "name"}),
        "user": frozenset({"role", "content", "name"}),
        # ``prefix`` and ``reasoning_content``: chat prefix completion and thinking mode
        "assistant": frozenset({"role", "content", "name", "tool_calls", "reasoning_content", "prefix"}),
        "tool": frozenset({"role", "content", "tool_call_id"}),
    },
    parts={"text": frozenset({"type", "text"}), "image_url": frozenset({"type", "image_url"})},
    tool_call=frozenset({"id", "type", "function"}),
    function=frozenset({"name", "arguments"}),
)
"""DeepSeek's message fields per role, content part and tool call. Roles not listed pass unchanged."""


def clean_message(message: Any) -> Any:
    """``message`` without other providers' fields: the message itself when it has none (the
    common case), else a copy. Never changes the caller's dict."""
    return DEEPSEEK_MESSAGE_FIELDS.keep(message)
