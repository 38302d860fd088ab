"""Gemini ``GenerateContentResponse`` -> OpenAI ``ChatCompletion`` / ``ChatCompletionChunk``
(pure functions and a small per-stream state)."""

from __future__ import annotations

import time
from typing import Any

from llm_factory_core import ChatCompletion, ChatCompletionChunk
from llm_factory_core.providers import json_dumps, new_completion_id

from ._signatures import new_call_id, pack_call_id

__all__ = ["Blocked", "StreamState", "decode_response", "finish_reason", "usage"]

_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


class Blocked(Exception):
    """The prompt itself was blocked (``promptFeedback.blockReason``, no candidates)."""

    def __init__(self, reason: str, message: str | None) -> None:
        super().__init__(f"Gemini blocked the prompt ({reason})" + (f": {message}" if message else ""))
        self.reason = reason


def finish_reason(reason: str | None, called_functions: bool) -> str | None:
    """Gemini's finish reason in OpenAI's words. A turn that called functions ends with STOP on
    Gemini's side; OpenAI clients expect ``tool_calls`` to run them."""
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called_functions else "stop"


def usage(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """``candidatesTokenCount`` excludes thinking tokens; OpenAI counts them as completion tokens
    and reports them again in ``completion_tokens_details.reasoning_tokens``."""
    if not metadata:
        return None
    prompt = int(metadata.get("promptTokenCount") or 0) + int(metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + thoughts
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(metadata.get("totalTokenCount") or prompt + completion),
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }
    if metadata.get("cachedContentTokenCount") is not None:
        out["prompt_tokens_details"] = {"cached_tokens": int(metadata["cachedContentTokenCount"])}
    return out


def _check_blocked(data: dict[str, Any]) -> None:
    feedback = data.get("promptFeedback") or {}
    if feedback.get("blockReason") and not data.get("candidates"):
        raise Blocked(str(feedback["blockReason"]), feedback.get("blockReasonMessage"))


def _tool_call(part: dict[str, Any], *, in_id: bool) -> dict[str, Any]:
    call = part["functionCall"]
    signature = part.get("thoughtSignature")
    out: dict[str, Any] = {
        "id": pack_call_id(str(call.get("id") or new_call_id()), signature if in_id else None),
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": json_dumps(call.get("args") or {}).decode()},
    }
    if signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _split_parts(parts: list[dict[str, Any]], *, in_id: bool) -> tuple[str, str, list[dict[str, Any]]]:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts:
        if "functionCall" in part:
            calls.append(_tool_call(part, in_id=in_id))
        elif isinstance(part.get("text"), str):
            (reasoning if part.get("thought") else text).append(part["text"])
    return "".join(text), "".join(reasoning), calls


def decode_response(data: dict[str, Any], model: str, *, signature_in_id: bool = True) -> ChatCompletion:
    _check_blocked(data)
    choices = []
    for position, candidate in enumerate(data.get("candidates") or []):
        parts = (candidate.get("content") or {}).get("parts") or []
        text, reasoning, calls = _split_parts(parts, in_id=signature_in_id)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        if reasoning:
            message["reasoning_content"] = reasoning
        reason = finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
        if reason == "content_filter" and not text:
            message["content"] = None
        choices.append({"index": candidate.get("index", position), "message": message, "finish_reason": reason})
    completion: dict[str, Any] = {
        "id": _completion_id(data),
        "created": int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": choices,
        "usage": usage(data.get("usageMetadata")),
    }
    return ChatCompletion.model_validate(completion)


def _completion_id(data: dict[str, Any]) -> str:
    return f"chatcmpl-{data['responseId']}" if data.get("responseId") else new_completion_id()


class StreamState:
    """Turns each SSE event (a partial ``GenerateContentResponse``) into a chunk.

    Keeps the chunk id and created time stable across the stream, numbers tool calls per
    candidate, remembers whether a candidate called functions (its STOP becomes ``tool_calls``)
    and keeps the last, cumulative, ``usageMetadata`` for the final usage chunk.
    """

    def __init__(self, model: str, *, signature_in_id: bool = True) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.signature_in_id = signature_in_id
        self.finished = False
        self.usage: dict[str, Any] | None = None
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}

    def chunk(self, data: dict[str, Any]) -> ChatCompletionChunk | None:
        _check_blocked(data)
        if not self.id:
            self.id = _completion_id(data)
        if data.get("modelVersion"):
            self.model = data["modelVersion"]
        if data.get("usageMetadata"):
            self.usage = usage(data["usageMetadata"])
        choices = []
        for position, candidate in enumerate(data.get("candidates") or []):
            index = int(candidate.get("index", position))
            parts = (candidate.get("content") or {}).get("parts") or []
            text, reasoning, calls = _split_parts(parts, in_id=self.signature_in_id)
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
            if reasoning:
                delta["reasoning_content"] = reasoning
            if calls:
                # Gemini sends each function call whole, so one delta carries all of it.
                first = self._calls.get(index, 0)
                delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(calls)]
                self._calls[index] = first + len(calls)
            reason = finish_reason(candidate.get("finishReason"), self._calls.get(index, 0) > 0)
            if reason is not None:
                self.finished = True
            if delta or reason is not None:
                choices.append({"index": index, "delta": delta, "finish_reason": reason})
        if not choices:
            return None
        return self._make(choices, None)

    def usage_chunk(self) -> ChatCompletionChunk | None:
        """OpenAI's final chunk for ``stream_options.include_usage``: no choices, only usage."""
        return self._make([], self.usage) if self.usage else None

    def _make(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {
                "id": self.id or new_completion_id(),
                "created": self.created,
                "model": self.model,
                "choices": choices,
                "usage": usage,
            }
        )
