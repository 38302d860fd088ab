"""What to do with earlier assistant ``reasoning_content`` when a conversation is sent back.

DeepSeek's rules changed over time (reference §4.4):

* the original ``deepseek-reasoner`` answered 400 when any input message carried
  ``reasoning_content`` (it had no tool calls);
* thinking mode (V3.1 and later, the default of the V4 models): between two user messages, if the
  model called tools, every assistant message of that stretch must carry its ``reasoning_content``
  in all later requests, or the API answers 400 ("The `reasoning_content` in the thinking mode must
  be passed back to the API."); without tool calls it is ignored.

The ``auto`` policy satisfies both: keep ``reasoning_content`` only in stretches that contain tool
calls, and only in thinking mode; drop it everywhere else (where it is rejected or ignored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["ReasoningHistory", "NON_THINKING_MODELS", "prepare_messages", "thinking_mode"]

ReasoningHistory = Literal["auto", "keep", "strip"]

NON_THINKING_MODELS = frozenset({"deepseek-chat"})
"""Models documented to answer without thinking unless ``thinking`` is enabled in the request.
Every other model (``deepseek-reasoner``, the V4 models) thinks by default."""


def thinking_mode(body: Mapping[str, Any]) -> bool:
    """Whether DeepSeek will think for this request body: an explicit ``thinking.type`` wins,
    otherwise the model decides."""
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping):
        kind = thinking.get("type")
        if kind == "enabled":
            return True
        if kind == "disabled":
            return False
    return str(body.get("model", "")) not in NON_THINKING_MODELS


def _tool_stretches(messages: Sequence[Mapping[str, Any]]) -> set[int]:
    """Indexes of assistant messages inside a stretch between user messages where the model
    called tools (those must keep their reasoning in thinking mode)."""
    keep: set[int] = set()
    stretch: list[int] = []
    called = False
    for i, message in enumerate([*messages, {"role": "user"}]):
        role = message.get("role")
        if role == "user":
            if called:
                keep.update(stretch)
            stretch, called = [], False
        elif role == "assistant":
            stretch.append(i)
            called = called or bool(message.get("tool_calls"))
        elif role == "tool":
            called = True
    return keep


def prepare_messages(messages: Sequence[Mapping[str, Any]], policy: ReasoningHistory, thinking: bool) -> list[Any]:
    """The messages to send: ``reasoning_content`` kept or removed per ``policy``. The input is
    not modified; untouched messages are passed through as they are."""
    if policy == "keep":
        return list(messages)
    keep = _tool_stretches(messages) if policy == "auto" and thinking else set()
    out: list[Any] = []
    for i, message in enumerate(messages):
        if "reasoning_content" in message and (i not in keep or message["reasoning_content"] is None):
            message = {k: v for k, v in message.items() if k != "reasoning_content"}
        out.append(message)
    return out
