"""Earlier assistant ``reasoning_content`` as DeepSeek needs it when a conversation is sent back.

DeepSeek's rules (api-docs.deepseek.com/guides/thinking_mode, checked 2026-12):

* thinking mode (on by default for every current model; ``thinking: {"type": "disabled"}`` turns
  it off; the legacy alias ``deepseek-chat`` is off unless enabled): between two user messages,
  if the model called tools, the assistant messages of that *tool stretch* must carry their
  ``reasoning_content`` in every later request, or the API answers 400 "The `reasoning_content` in
  the thinking mode must be passed back to the API." (older wording: "Missing `reasoning_content`
  field in the assistant message at message index N"); outside tool stretches it is ignored;
* the original ``deepseek-reasoner`` answered 400 when any input message carried it.

Most OpenAI clients rebuild messages from known fields and drop ``reasoning_content`` (LangChain,
agent SDKs; openai/openai-agents-python#2155, anomalyco/opencode#24722), and a history may come
from another provider that never had any. So the ``auto`` policy, in thinking mode, gives every
assistant message of a tool stretch a ``reasoning_content``: the caller's; else the reasoning
remembered for its tool-call id (``reasoning_memory``, kind ``deepseek.reasoning``); else
``EMPTY_REASONING``. An explicit ``null`` counts as missing. Outside tool stretches, and outside
thinking mode, it is dropped. Other providers' fields are dropped in the same pass (``_foreign``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from ._foreign import clean_message

__all__ = [
    "EMPTY_REASONING",
    "NON_THINKING_MODELS",
    "ReasoningHistory",
    "prepare_messages",
    "thinking_mode",
]

ReasoningHistory = Literal["auto", "keep", "strip"]

NON_THINKING_MODELS = frozenset({"deepseek-chat"})
"""Models that answer without thinking unless ``thinking`` is enabled in the request (the legacy
alias of V4 Flash's non-thinking mode). Every other model (``deepseek-flash``, ``deepseek-v4-pro``,
``deepseek-v4-flash``, ``deepseek-reasoner``) thinks by default."""

EMPTY_REASONING = ""
"""What a tool-stretch assistant message carries when neither the caller nor the memory has its
reasoning. Community-observed, not documented: DeepSeek accepts an empty ``reasoning_content`` as
"passed back" (deepseek-ai/deepseek-harness discussions #739 and #1850: the official adapter's
400 came from *omitting* the field when the reasoning was empty; anomalyco/opencode PR #24150
injects it for every assistant message; sluisr/deepseek-cli v1.1.1). One constant, so it is easy
to change should DeepSeek start refusing it."""

Recall = Callable[[str], str | None]
"""Reasoning remembered for a tool-call id, or None."""


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


def _tool_stretches(messages: Sequence[Any]) -> set[int]:
    """Indexes of the assistant messages in stretches between user messages where the model
    called tools (those must carry reasoning in thinking mode). One pass."""
    keep: set[int] = set()
    stretch: list[int] = []
    called = False
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role == "user":
            if called:
                keep.update(stretch)
            stretch, called = [], False
        elif role == "assistant":
            stretch.append(i)
            called = called or bool(message.get("tool_calls"))
        elif role == "tool":
            called = True
    if called:  # the open stretch of the current turn
        keep.update(stretch)
    return keep


def _restored(message: Mapping[str, Any], recall: Recall | None) -> str:
    """The reasoning a tool-stretch assistant message is sent with."""
    given = message.get("reasoning_content")
    if isinstance(given, str) and given:
        return given
    if recall is not None:
        for call in message.get("tool_calls") or ():
            call_id = call.get("id") if isinstance(call, Mapping) else None
            if isinstance(call_id, str) and (found := recall(call_id)):
                return found
    return given if isinstance(given, str) else EMPTY_REASONING


def prepare_messages(
    messages: Sequence[Any],
    policy: ReasoningHistory,
    thinking: bool,
    *,
    recall: Recall | None = None,
    prefix_index: int | None = None,
) -> list[Any]:
    """The messages to send: other providers' fields dropped, ``reasoning_content`` restored,
    kept or removed per ``policy`` (see the module docstring); ``keep`` leaves it as given.
    ``prefix_index`` is a final assistant message sent as a prefix (chat prefix completion): it is
    the reply being written, not a past turn, so nothing is restored on it. Linear in the number
    of messages; the input is not modified and unchanged messages are passed through as they are."""
    keep = _tool_stretches(messages) if policy == "auto" and thinking else set()
    out: list[Any] = []
    for i, original in enumerate(messages):
        message = clean_message(original)
        if policy != "keep" and isinstance(message, Mapping) and message.get("role") == "assistant":
            if i in keep and i != prefix_index:
                reasoning = _restored(message, recall)
                if message.get("reasoning_content") is not reasoning:
                    message = {**message, "reasoning_content": reasoning}
            elif "reasoning_content" in message and (i != prefix_index or message["reasoning_content"] is None):
                message = {k: v for k, v in message.items() if k != "reasoning_content"}
        out.append(message)
    return out
