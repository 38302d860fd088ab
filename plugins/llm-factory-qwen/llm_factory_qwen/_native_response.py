"""DashScope native replies and stream events -> OpenAI shapes (pure functions, no I/O).

Native reply: ``{"output": {"choices": [{"message", "finish_reason"}]}, "usage": {"input_tokens",
"output_tokens", "total_tokens"}, "request_id"}``. Streams repeat that shape per event with
``finish_reason: "null"`` (a string) until the end, cumulative usage in every event, tool-call
fragments keyed by ``index`` whose continuations carry ``"id": ""``, and no ``[DONE]``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from llm_factory_core.providers import FINISH_REASONS, new_completion_id

__all__ = ["NativeStreamState", "completion_id", "decode_native_completion", "map_finish_reason", "map_usage"]

log = logging.getLogger("llm_factory_qwen")


def map_finish_reason(reason: Any, has_tool_calls: bool) -> str | None:
    """``"null"`` (mid-stream) -> None. DashScope sometimes says ``stop`` for a turn that called
    tools (forced ``tool_choice``); OpenAI clients only run tools on ``tool_calls``."""
    if reason is None or reason in ("null", ""):
        return None
    if has_tool_calls and reason in ("stop", "tool_calls"):
        return "tool_calls"
    if reason in FINISH_REASONS:
        return str(reason)
    log.warning("qwen: unknown finish_reason %r mapped to 'stop'", reason)
    return "stop"


def map_usage(usage: Any) -> dict[str, Any] | None:
    """``input_tokens`` / ``output_tokens`` -> ``prompt_tokens`` / ``completion_tokens``, with
    cached and reasoning token details where DashScope reports them; an explicit cache's
    ``cache_creation_input_tokens`` (Model Studio "Context cache") becomes OpenAI's
    ``cache_write_tokens``. DashScope's ``input_tokens`` already counts cached and written ones."""
    if not isinstance(usage, dict) or not usage:
        return None
    prompt = int(usage.get("input_tokens", usage.get("prompt_tokens")) or 0)
    completion = int(usage.get("output_tokens", usage.get("completion_tokens")) or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    if isinstance(details, dict):
        prompt_details = {}
        if details.get("cached_tokens") is not None:
            prompt_details["cached_tokens"] = int(details["cached_tokens"])
        if details.get("cache_creation_input_tokens") is not None:
            prompt_details["cache_write_tokens"] = int(details["cache_creation_input_tokens"])
        if prompt_details:
            out["prompt_tokens_details"] = prompt_details
    output_details = usage.get("output_tokens_details") or {}
    if isinstance(output_details, dict) and output_details.get("reasoning_tokens") is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": int(output_details["reasoning_tokens"])}
    return out


def _text(content: Any) -> str | None:
    """Text models send a string; multimodal ones a list of ``{"text": ...}`` parts."""
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def _choices(data: dict[str, Any]) -> list[dict[str, Any]]:
    output = data.get("output") or {}
    choices = output.get("choices")
    if choices is None and "text" in output:  # result_format "text" (a proxy that forced it)
        return [{"message": {"content": output.get("text")}, "finish_reason": output.get("finish_reason")}]
    return [c for c in choices or [] if isinstance(c, dict)]


def completion_id(data: dict[str, Any]) -> str:
    """``chatcmpl-<request_id>``: OpenAI's id shape, the same one compatible mode answers with,
    and still the ``request_id`` Alibaba support asks for."""
    request_id = data.get("request_id")
    return f"chatcmpl-{request_id}" if request_id else new_completion_id()


def _new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def decode_native_completion(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A native non-streaming reply -> a ``ChatCompletion``-shaped dict."""
    choices = []
    for position, choice in enumerate(_choices(data)):
        native = choice.get("message") or {}
        tool_calls = [
            {
                "id": call.get("id") or _new_call_id(),
                "type": "function",
                "function": {
                    "name": (call.get("function") or {}).get("name", ""),
                    "arguments": (call.get("function") or {}).get("arguments") or "",
                },
            }
            for call in native.get("tool_calls") or []
            if isinstance(call, dict)
        ]
        text = _text(native.get("content"))
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else text)}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if native.get("reasoning_content"):
            message["reasoning_content"] = native["reasoning_content"]
        out: dict[str, Any] = {
            "index": choice.get("index", position),
            "message": message,
            "finish_reason": map_finish_reason(choice.get("finish_reason"), bool(tool_calls)) or "stop",
        }
        if isinstance(choice.get("logprobs"), dict):
            out["logprobs"] = choice["logprobs"]
        choices.append(out)
    return {
        "id": completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": map_usage(data.get("usage")),
    }


class _ChoiceState:
    """Tool-call bookkeeping of one choice. OpenAI clients assemble calls by ``index``, so each
    call keeps one index for its whole life, even when DashScope reuses native index 0 for
    parallel calls (they differ by id) or omits the index on continuation fragments."""

    __slots__ = ("by_id", "by_native", "finished", "last", "next", "role_sent", "saw_tools")

    def __init__(self) -> None:
        self.role_sent = False
        self.finished = False
        self.by_id: dict[str, int] = {}
        self.by_native: dict[int, int] = {}
        self.last: int | None = None
        self.next = 0
        self.saw_tools = False

    def tool_delta(self, call: dict[str, Any]) -> dict[str, Any]:
        self.saw_tools = True
        native_index = call.get("index")
        call_id = call.get("id") or ""
        function = call.get("function") or {}
        new = False
        if call_id and call_id in self.by_id:
            index = self.by_id[call_id]
        elif call_id:
            index, new = self.next, True
            self.by_id[call_id] = index
        elif isinstance(native_index, int) and native_index in self.by_native:
            index = self.by_native[native_index]
        elif native_index is None and self.last is not None:
            index = self.last
        else:
            index, new = self.next, True
        if new:
            self.next = index + 1
        if isinstance(native_index, int):
            self.by_native[native_index] = index
        self.last = index
        delta: dict[str, Any] = {"index": index}
        fn: dict[str, Any] = {}
        if new:
            delta["id"] = call_id or _new_call_id()
            delta["type"] = "function"
            fn["name"] = function.get("name") or ""
        elif function.get("name"):
            fn["name"] = function["name"]
        fn["arguments"] = function.get("arguments") or ""
        delta["function"] = fn
        return delta


class NativeStreamState:
    """Turns the events of one native stream into ``ChatCompletionChunk``-shaped dicts."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self.choices: dict[int, _ChoiceState] = {}

    @property
    def finished(self) -> bool:
        """Every choice seen so far has a finish reason (there is no ``[DONE]`` to wait for)."""
        return bool(self.choices) and all(c.finished for c in self.choices.values())

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id or new_completion_id(),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk

    def feed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """One ``event:result`` payload -> a chunk, or None when it carries nothing new."""
        if not self.id:
            self.id = completion_id(data)
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]  # cumulative: the last one is the total
        out = []
        for position, choice in enumerate(_choices(data)):
            index = choice.get("index", position)
            state = self.choices.setdefault(index, _ChoiceState())
            native = choice.get("message") or choice.get("delta") or {}
            delta: dict[str, Any] = {}
            if not state.role_sent:
                delta["role"] = "assistant"
                state.role_sent = True
            if text := _text(native.get("content")):
                delta["content"] = text
            if native.get("reasoning_content"):
                delta["reasoning_content"] = native["reasoning_content"]
            calls = [state.tool_delta(c) for c in native.get("tool_calls") or [] if isinstance(c, dict)]
            if calls:
                delta["tool_calls"] = calls
            finish = None if state.finished else map_finish_reason(choice.get("finish_reason"), state.saw_tools)
            if finish is not None:
                state.finished = True
            if delta or finish is not None:
                entry: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish}
                if isinstance(choice.get("logprobs"), dict):
                    entry["logprobs"] = choice["logprobs"]
                out.append(entry)
        return self._chunk(out) if out else None

    def usage_chunk(self) -> dict[str, Any] | None:
        """OpenAI's last chunk under ``stream_options.include_usage``: empty choices, the usage."""
        usage = map_usage(self.usage)
        return self._chunk([], usage) if usage is not None else None
