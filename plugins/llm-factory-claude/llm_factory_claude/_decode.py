"""Anthropic Messages replies and stream events -> OpenAI's ChatCompletion and chunks (pure).

Both hosts send the same message and events (Bedrock wraps each event in an event-stream frame).
Finish reasons: ``end_turn``/``stop_sequence`` -> ``stop``; ``max_tokens`` and
``model_context_window_exceeded`` -> ``length``; ``tool_use`` -> ``tool_calls``; ``refusal`` and
Bedrock guardrail interventions -> ``content_filter``; ``pause_turn`` (a server tool such as web
search paused a long turn: send the assistant reply back as-is to let Claude continue) -> ``stop``,
OpenAI having no such reason; the reply carries ``stop_reason: "pause_turn"`` so a client can tell.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from llm_factory_core import ChatCompletion, ChatCompletionChunk
from llm_factory_core.dialects.anthropic import usage_from_anthropic
from llm_factory_core.providers import new_completion_id

from ._json_mode import JSON_TOOL, JsonMode
from ._thinking import remember_blocks

__all__ = ["MessagesStreamState", "decode_message", "map_stop_reason", "usage_from_anthropic"]

log = logging.getLogger("llm_factory_claude")

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # Converse's names, for the same guardrail outcomes reported by InvokeModel's body.
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def map_stop_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if reason in _STOP_REASONS:
        return _STOP_REASONS[reason]
    log.warning("unknown Claude stop_reason %r mapped to 'stop'", reason)
    return "stop"


def _guardrail_intervened(data: dict[str, Any]) -> bool:
    return data.get("amazon-bedrock-guardrailAction") == "INTERVENED"


def _thinking_block(block: dict[str, Any]) -> dict[str, Any] | None:
    if block.get("type") == "thinking":
        out: dict[str, Any] = {"type": "thinking", "thinking": block.get("thinking") or ""}
        if block.get("signature"):
            out["signature"] = block["signature"]
        return out
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data") or ""}
    return None


def decode_message(data: Any, *, model: str, json_answer: JsonMode | None = None) -> ChatCompletion:
    """An Anthropic ``Message`` -> ChatCompletion. Raises ValueError for a body of another shape.
    With ``json_answer`` (a ``response_format`` request), the forced tool's input is the text."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("the reply is not a Claude message")
    texts: list[str] = []
    thinking: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind in ("thinking", "redacted_thinking"):
            found = _thinking_block(block)
            if found is not None:
                thinking.append(found)
        elif kind == "tool_use" and json_answer is not None and block.get("name") == JSON_TOOL:
            texts.append(json_answer.text(block.get("input")))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id") or "",
                    "type": "function",
                    "function": {
                        "name": block.get("name") or "",
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["reasoning_content"] = "".join(str(b.get("thinking") or "") for b in thinking)
        message["thinking_blocks"] = thinking
        remember_blocks(thinking, (c["id"] for c in tool_calls))
    finish = "content_filter" if _guardrail_intervened(data) else map_stop_reason(data.get("stop_reason"))
    if finish == "tool_calls" and not tool_calls:
        finish = "stop"  # the forced JSON tool: an answer, not a call to make
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish or "stop"}
    if data.get("stop_reason") in ("pause_turn", "stop_sequence"):
        choice["stop_reason"] = data["stop_reason"]  # what chat's finish_reason cannot say
        if data.get("stop_sequence"):
            choice["stop_sequence"] = data["stop_sequence"]
    return ChatCompletion.model_validate(
        {
            "id": data.get("id") or new_completion_id(),
            "created": int(time.time()),
            "model": data.get("model") or model,
            "choices": [choice],
            "usage": usage_from_anthropic(data.get("usage")),
        }
    )


class MessagesStreamState:
    """Claude stream events -> OpenAI chunks.

    The finish chunk (and the usage chunk, when asked for) is sent at ``message_stop`` because the
    final usage only arrives with ``message_delta`` / Bedrock's invocation metrics; a stream cut
    after ``message_delta`` still finishes (``close``). Tool calls get OpenAI indices: the ordinal
    of the tool call, not Claude's content block index. Thinking text streams as
    ``reasoning_content``; at each thinking block's end one delta carries the whole block
    (signature included, and its ``index`` among the turn's blocks) in ``thinking_blocks``.
    """

    def __init__(self, model: str, *, include_usage: bool, json_answer: JsonMode | None = None) -> None:
        self.json_answer = json_answer
        self._json_block: int | None = None
        self._json_parts: list[str] = []
        self.id = new_completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.guardrail = False
        self.finished = False
        self._tool_index: dict[int, int] = {}
        self._tool_ids: list[str] = []
        self._open_thinking: dict[int, dict[str, Any]] = {}
        self._thinking_parts: dict[int, list[str]] = {}
        self.thinking_blocks: list[dict[str, Any]] = []

    def _chunk(
        self, delta: dict[str, Any] | None, finish: str | None = None, *, usage: dict[str, Any] | None = None
    ) -> ChatCompletionChunk:
        data: dict[str, Any] = {
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            data["usage"] = usage
        return ChatCompletionChunk.model_validate(data)

    def feed(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        """Chunks for one decoded event (``error`` events are the caller's to raise)."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self.usage.update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(event.get("index", 0)))
        if kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.stop_sequence = (event.get("delta") or {}).get("stop_sequence") or self.stop_sequence
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            if _guardrail_intervened(event):
                self.guardrail = True
            return []
        if kind == "message_stop":
            metrics = event.get("amazon-bedrock-invocationMetrics") or {}
            if metrics.get("outputTokenCount") is not None:
                self.usage["output_tokens"] = metrics["outputTokenCount"]
            if metrics.get("inputTokenCount") is not None and "input_tokens" not in self.usage:
                self.usage["input_tokens"] = metrics["inputTokenCount"]
            if _guardrail_intervened(event):
                self.guardrail = True
            return self._finish()
        return []  # ping, unknown future events

    def _block_start(self, index: int, block: dict[str, Any]) -> list[ChatCompletionChunk]:
        btype = block.get("type")
        if btype == "tool_use" and self.json_answer is not None and block.get("name") == JSON_TOOL:
            self._json_block = index
            return []
        if btype == "tool_use":
            position = self._tool_index.setdefault(index, len(self._tool_index))
            self._tool_ids.append(str(block.get("id") or ""))
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if btype in ("thinking", "redacted_thinking"):
            self._open_thinking[index] = dict(block)
            self._thinking_parts[index] = [block.get("thinking") or ""] if btype == "thinking" else []
            text = block.get("thinking") if btype == "thinking" else None
            return [self._chunk({"reasoning_content": text})] if text else []
        if btype == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[ChatCompletionChunk]:
        dtype = delta.get("type")
        if dtype == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if dtype == "input_json_delta" and delta.get("partial_json"):
            if index == self._json_block:
                return self._json_delta(delta["partial_json"])
            position = self._tool_index.setdefault(index, len(self._tool_index))
            call = {"index": position, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        if dtype == "thinking_delta" and delta.get("thinking"):
            self._thinking_parts.setdefault(index, []).append(delta["thinking"])
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        if dtype == "signature_delta" and index in self._open_thinking:
            # Sent just before content_block_stop (anthropic-sdk-python types/signature_delta.py).
            block = self._open_thinking[index]
            block["signature"] = (block.get("signature") or "") + str(delta.get("signature") or "")
        return []

    def _block_stop(self, index: int) -> list[ChatCompletionChunk]:
        if index in self._open_thinking:
            raw = self._open_thinking.pop(index)
            if raw.get("type") == "thinking":
                raw["thinking"] = "".join(self._thinking_parts.pop(index, []))
            block = _thinking_block(raw)
            if block is None:
                return []
            self.thinking_blocks.append(block)
            # An ``index`` (the block's place in the turn), as list deltas of dicts carry in
            # OpenAI's shape: the openai SDK's stream helpers (``accumulate_delta``) raise
            # "Expected list delta entry to have an `index` key" on a second block without one.
            # The encoder drops it again (``_thinking._clean``).
            return [self._chunk({"thinking_blocks": [{**block, "index": len(self.thinking_blocks) - 1}]})]
        if self._json_parts and index == self._json_block:
            return self._json_end()
        return []

    def _json_delta(self, partial: str) -> list[ChatCompletionChunk]:
        """The JSON answer streams as text; a wrapped one (``{"value": ...}``) is held until its
        block ends, then unwrapped."""
        if self.json_answer is not None and self.json_answer.wrapped:
            self._json_parts.append(partial)
            return []
        return [self._chunk({"content": partial})]

    def _json_end(self) -> list[ChatCompletionChunk]:
        assert self.json_answer is not None
        raw = "".join(self._json_parts)
        self._json_parts = []
        try:
            text = self.json_answer.text(json.loads(raw))
        except ValueError:  # cut short (max_tokens): the text as it came, as OpenAI sends it
            text = raw
        return [self._chunk({"content": text})]

    def _finish(self) -> list[ChatCompletionChunk]:
        if self.finished:
            return []
        self.finished = True
        remember_blocks(self.thinking_blocks, self._tool_ids)
        finish = "content_filter" if self.guardrail else (map_stop_reason(self.stop_reason) or "stop")
        if finish == "tool_calls" and not self._tool_index:
            finish = "stop"  # the forced JSON tool: an answer, not a call to make
        out = [self._chunk({}, finish)]
        if self.stop_reason in ("pause_turn", "stop_sequence"):  # as in chat: the choice says why it stopped
            out[0].choices[0].stop_reason = self.stop_reason  # type: ignore[attr-defined]
            if self.stop_sequence:
                out[0].choices[0].stop_sequence = self.stop_sequence  # type: ignore[attr-defined]
        if self.include_usage:
            # OpenAI's shape: a last chunk with empty choices that carries the usage.
            usage = usage_from_anthropic(self.usage) or usage_from_anthropic({"output_tokens": 0})
            out.append(self._chunk(None, usage=usage))
        return out

    def close(self) -> list[ChatCompletionChunk] | None:
        """At the end of the bytes: the remaining chunks if a stop reason arrived, else None
        (the stream was cut before it finished)."""
        if self.finished:
            return []
        if self.stop_reason is None:
            return None
        return self._finish()
