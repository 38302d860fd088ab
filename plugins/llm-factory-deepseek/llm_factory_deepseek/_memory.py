"""DeepSeek's reasoning remembered by tool-call id, for clients that drop ``reasoning_content``.

When a reply (or a stream) with tool calls comes back, the full reasoning text of that turn is
stored under each of its tool-call ids in the core's ``reasoning_memory`` (kind
``deepseek.reasoning``); ``_history`` looks it up when the history comes back without it. The
memory is bounded and per process: what it forgot becomes ``EMPTY_REASONING``.
"""

from __future__ import annotations

from typing import Any

from llm_factory_core.providers import reasoning_memory

__all__ = ["MEMORY_KIND", "StreamReasoning", "recall", "remember_completion"]

MEMORY_KIND = "deepseek.reasoning"


def recall(tool_call_id: str) -> str | None:
    found = reasoning_memory.recall(MEMORY_KIND, tool_call_id)
    return found if isinstance(found, str) else None


def _remember(reasoning: Any, call_ids: Any) -> None:
    if not isinstance(reasoning, str) or not reasoning:
        return
    for call_id in call_ids:
        if isinstance(call_id, str):
            reasoning_memory.remember(MEMORY_KIND, call_id, reasoning)


def remember_completion(data: dict[str, Any]) -> None:
    """Remember the reasoning of each choice of a decoded reply that called tools."""
    for choice in data.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            _remember(message.get("reasoning_content"), (c.get("id") for c in calls if isinstance(c, dict)))


class StreamReasoning:
    """Collects one stream's reasoning deltas and tool-call ids per choice, and remembers them
    when the choice finishes (before the finishing chunk reaches the caller, who may send the
    next request right away). Watches decoded events (dicts), forwarded raw or not."""

    __slots__ = ("_ids", "_reasoning")

    def __init__(self) -> None:
        self._reasoning: dict[int, list[str]] = {}
        self._ids: dict[int, list[str]] = {}

    def observe(self, data: dict[str, Any]) -> None:
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text = delta.get("reasoning_content")
                if isinstance(text, str) and text:
                    self._reasoning.setdefault(index, []).append(text)
                for call in delta.get("tool_calls") or ():
                    call_id = call.get("id") if isinstance(call, dict) else None
                    if isinstance(call_id, str) and call_id:
                        self._ids.setdefault(index, []).append(call_id)
            if choice.get("finish_reason") is not None:
                ids = self._ids.pop(index, None)
                reasoning = self._reasoning.pop(index, None)
                if ids and reasoning:
                    _remember("".join(reasoning), ids)
