"""Reasoning state a provider needs back, remembered by tool-call id for clients that drop it.

Reasoning models hand out opaque state with a tool call that must come back with the next request:
Claude's signed ``thinking`` / ``redacted_thinking`` blocks, Gemini's thought signatures,
DeepSeek's ``reasoning_content``. We return it in the OpenAI shape (``thinking_blocks``,
``extra_content.google.thought_signature``, ``reasoning_content``), and clients that keep whole
messages send it back. Many OpenAI clients rebuild messages from known fields only (LangChain,
agent SDKs) and drop it; the tool-call id always survives, so a provider also remembers the state
here under that id and finds it again when the history comes back without it.

Bounded (least recently used out) and per process: what a gateway forgets is then handled by each
provider's documented fallback (Gemini's skip value, DeepSeek's empty ``reasoning_content``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

__all__ = ["ReasoningMemory", "reasoning_memory"]


class ReasoningMemory:
    """A bounded map ``(kind, tool_call_id) -> state``; ``kind`` names the provider's state
    (``"claude.thinking"``, ``"gemini.signature"``...) so providers never read each other's."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()  # the sync API's portal thread and others may share it

    def remember(self, kind: str, tool_call_id: str, state: Any) -> None:
        if not tool_call_id or state is None:
            return
        with self._lock:
            items = self._items
            items[(kind, tool_call_id)] = state
            items.move_to_end((kind, tool_call_id))
            while len(items) > self.max_entries:
                items.popitem(last=False)

    def recall(self, kind: str, tool_call_id: str | None) -> Any:
        """The state remembered for ``tool_call_id``, or None."""
        if not tool_call_id:
            return None
        with self._lock:
            return self._items.get((kind, tool_call_id))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


reasoning_memory = ReasoningMemory()
"""The process's memory; providers use it through ``llm_factory_core.providers``."""
