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

__all__ = ["MESSAGE_KEYS", "clean_message"]

MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "reasoning_content", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
"""DeepSeek's message fields per role (``prefix`` and ``reasoning_content`` on assistant messages
belong to chat prefix completion and thinking mode). Roles not listed pass unchanged."""

_TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})
_PART_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
}
_FOREIGN_PART_TYPES = frozenset({"thinking", "redacted_thinking", "reasoning"})
"""Reasoning parts of other providers (Claude's raw blocks): their state means nothing here."""


def clean_message(message: Any) -> Any:
    """``message`` without other providers' fields: the message itself when it has none (the
    common case), else a copy. Never changes the caller's dict."""
    if not isinstance(message, dict):
        return message
    allowed = MESSAGE_KEYS.get(message.get("role"))  # type: ignore[arg-type]
    if allowed is None:
        return message
    result = message if allowed.issuperset(message) else {k: v for k, v in message.items() if k in allowed}
    content = result.get("content")
    if isinstance(content, list):
        parts = _clean_parts(content)
        if parts is not content:
            result = result if result is not message else dict(message)
            # Only foreign reasoning parts: no content at all rather than an empty list.
            result["content"] = parts or (None if result.get("role") == "assistant" else "")
    calls = result.get("tool_calls")
    if isinstance(calls, list) and calls:
        fixed = _clean_calls(calls)
        if fixed is not calls:
            result = result if result is not message else dict(message)
            result["tool_calls"] = fixed
    return result


def _clean_calls(calls: list[Any]) -> list[Any]:
    out: list[Any] | None = None
    for i, call in enumerate(calls):
        fixed = call
        if isinstance(call, dict):
            if not _TOOL_CALL_KEYS.issuperset(call):
                fixed = {k: v for k, v in call.items() if k in _TOOL_CALL_KEYS}
            function = call.get("function")
            if isinstance(function, dict) and not _FUNCTION_KEYS.issuperset(function):
                fixed = fixed if fixed is not call else dict(call)
                fixed["function"] = {k: v for k, v in function.items() if k in _FUNCTION_KEYS}
        if fixed is not call and out is None:
            out = list(calls[:i])
        if out is not None:
            out.append(fixed)
    return calls if out is None else out


def _clean_parts(parts: list[Any]) -> list[Any]:
    out: list[Any] | None = None
    for i, part in enumerate(parts):
        fixed: Any = part
        if isinstance(part, dict):
            kind = part.get("type")
            if kind in _FOREIGN_PART_TYPES:
                fixed = None
            else:
                allowed = _PART_KEYS.get(kind) if isinstance(kind, str) else None
                if allowed is not None and not allowed.issuperset(part):
                    fixed = {k: v for k, v in part.items() if k in allowed}
        if fixed is not part and out is None:
            out = list(parts[:i])
        if out is not None and fixed is not None:
            out.append(fixed)
    return parts if out is None else out
