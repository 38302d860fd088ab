"""Chat chunks to Anthropic's Messages stream events.

``message_start`` and a ``ping`` open the stream; each content block (thinking, redacted_thinking,
text, tool_use) is opened (``content_block_start``), grows by deltas (``thinking_delta`` then
``signature_delta``, ``text_delta``, ``input_json_delta``) and is closed
(``content_block_stop``) when the next block starts or the stream finishes; ``message_delta``
carries the stop reason and the final usage, and ``message_stop`` ends it. A stream that breaks
after it started ends with an ``error`` event instead (Anthropic's in-stream error).

Thinking from an upstream that speaks Messages arrives as ``reasoning_content`` deltas and, at the
block's end, one delta whose ``thinking_blocks`` holds the whole signed block: its signature
becomes the ``signature_delta`` just before the block's stop, as Anthropic sends it.
"""

from __future__ import annotations

from typing import Any

from .._types import ChatCompletionChunk
from .anthropic import stop_reason_from_finish, thinking_block, usage_to_anthropic

__all__ = ["MessagesEventStream"]


class MessagesEventStream:
    """Feed it chat chunks; it returns the events to send for each (dicts with their ``type``)."""

    def __init__(self, *, message_id: str, model: str) -> None:
        self.message_id = message_id
        self.model = model
        self.blocks: list[dict[str, Any]] = []
        """The message's content so far (what a client accumulates)."""
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.upstream_stop: Any = None
        self.stop_sequence: Any = None
        self._open: int | None = None  # index of the block being streamed
        self._calls: dict[int, int] = {}  # chat tool-call index -> block index
        self._arguments: dict[int, str] = {}

    def start(self) -> list[dict[str, Any]]:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Chat streams report usage at their end: the final counts ride on message_delta.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    # -- blocks ----------------------------------------------------------------------------------

    def _close(self) -> list[dict[str, Any]]:
        index, self._open = self._open, None
        return [] if index is None else [{"type": "content_block_stop", "index": index}]

    def _begin(self, block: dict[str, Any], announced: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        events = self._close()
        self.blocks.append(block)
        self._open = len(self.blocks) - 1
        start = announced if announced is not None else dict(block)
        return [*events, {"type": "content_block_start", "index": self._open, "content_block": start}]

    def _open_kind(self) -> str | None:
        return None if self._open is None else str(self.blocks[self._open]["type"])

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        assert self._open is not None
        return {"type": "content_block_delta", "index": self._open, "delta": delta}

    def _thinking_text(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open_kind() != "thinking" or self.blocks[self._open or 0].get("signature"):
            events += self._begin({"type": "thinking", "thinking": "", "signature": ""})
        assert self._open is not None
        self.blocks[self._open]["thinking"] += text
        return [*events, self._delta({"type": "thinking_delta", "thinking": text})]

    def _signed(self, raw: Any) -> list[dict[str, Any]]:
        block = thinking_block(raw)
        if block is None:
            return []
        if block["type"] == "redacted_thinking":
            return [*self._begin(block), *self._close()]
        events: list[dict[str, Any]] = []
        if self._open_kind() != "thinking" or self.blocks[self._open or 0].get("signature"):
            # the block came whole (no text streamed before it): its text first
            events += (
                self._thinking_text(block["thinking"])
                if block["thinking"]
                else self._begin({"type": "thinking", "thinking": "", "signature": ""})
            )
        assert self._open is not None
        self.blocks[self._open]["signature"] = block["signature"]
        events.append(self._delta({"type": "signature_delta", "signature": block["signature"]}))
        return [*events, *self._close()]

    def _text(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open_kind() != "text":
            events += self._begin({"type": "text", "text": ""})
        assert self._open is not None
        self.blocks[self._open]["text"] += text
        return [*events, self._delta({"type": "text_delta", "text": text})]

    def _tool(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        index = self._calls.get(position)
        if index is None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._begin(block, dict(block))
            index = self._calls[position] = len(self.blocks) - 1
            self._arguments[index] = ""
        arguments = function.get("arguments") or ""
        if arguments:
            # A call's arguments arrive in order; deltas name their block, so a client assembles
            # them even when an upstream interleaves two calls (rare; OpenAI sends one at a time).
            self._arguments[index] += arguments
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        return events

    # -- input -----------------------------------------------------------------------------------

    def feed(self, chunk: ChatCompletionChunk) -> list[dict[str, Any]]:
        if chunk.usage is not None:
            self.usage = chunk.usage.model_dump(exclude_none=True)
        if not chunk.choices:
            return []
        choice = chunk.choices[0]
        delta = choice.delta.model_dump(exclude_none=True)
        events: list[dict[str, Any]] = []
        if delta.get("reasoning_content"):
            events += self._thinking_text(str(delta["reasoning_content"]))
        for raw in delta.get("thinking_blocks") or []:
            events += self._signed(raw)
        if delta.get("content"):
            events += self._text(str(delta["content"]))
        for call in delta.get("tool_calls") or []:
            events += self._tool(call)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
            extra = choice.model_extra or {}
            self.upstream_stop = extra.get("stop_reason")
            self.stop_sequence = extra.get("stop_sequence")
        return events

    @property
    def stop_reason(self) -> str:
        return stop_reason_from_finish(self.finish_reason, self.upstream_stop)

    def finish(self) -> list[dict[str, Any]]:
        """Close the open block and end the message."""
        events = self._close()
        usage = usage_to_anthropic(self.usage)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
                "usage": usage,
            }
        )
        events.append({"type": "message_stop"})
        return events

    @staticmethod
    def fail(error_type: str, message: str) -> list[dict[str, Any]]:
        """The stream broke after it started: Anthropic's in-stream ``error`` event."""
        return [{"type": "error", "error": {"type": error_type, "message": message}}]
