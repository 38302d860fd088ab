"""Gemini ``GenerateContentResponse`` -> OpenAI ``ChatCompletion`` / ``ChatCompletionChunk``
(pure functions and a small per-stream state)."""

from __future__ import annotations

import logging
import time
from typing import Any

from llm_factory_core import ChatCompletion, ChatCompletionChunk
from llm_factory_core.providers import json_dumps, new_completion_id

from ._signatures import extra_content, new_call_id, remember

__all__ = ["Blocked", "StreamState", "TOOL_FAILURES", "TurnFailed", "decode_response", "finish_reason", "usage"]

log = logging.getLogger("llm_factory_gemini")

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
        "MODEL_ARMOR",
    }
)
TOOL_FAILURES = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)
"""Finish reasons of a turn the model botched (google-genai ``FinishReason``): the same request
often succeeds when sent again, so an empty turn ending so is an error that fails over, not an
empty ``stop``."""


class TurnFailed(Exception):
    """Every candidate ended with a ``TOOL_FAILURES`` reason and produced nothing."""

    def __init__(self, reason: str, message: str | None) -> None:
        detail = f": {message}" if message else ""
        super().__init__(f"Gemini ended the turn with {reason} and no content{detail}; sending it again may succeed")
        self.reason = reason


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


def _check_turn(candidates: list[dict[str, Any]], produced: dict[int, bool]) -> None:
    """Raise ``TurnFailed`` when every finished candidate is an empty ``TOOL_FAILURES`` end; log a
    warning when such a candidate did produce something (it is returned, with ``stop``)."""
    failed: list[dict[str, Any]] = []
    for position, candidate in enumerate(candidates):
        reason = candidate.get("finishReason")
        if reason not in TOOL_FAILURES:
            continue
        index = int(candidate.get("index", position))
        if produced.get(index):
            log.warning("Gemini candidate %d ended with %s after some output; returned as stop", index, reason)
        else:
            failed.append(candidate)
    if failed and len(failed) == len(candidates):
        log.warning("Gemini ended the turn with %s and no content", failed[0]["finishReason"])
        raise TurnFailed(str(failed[0]["finishReason"]), failed[0].get("finishMessage"))


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


def _tool_call(part: dict[str, Any]) -> dict[str, Any]:
    call = part["functionCall"]
    call_id = str(call.get("id") or new_call_id())
    signature = part.get("thoughtSignature")
    out: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": json_dumps(call.get("args") or {}).decode()},
    }
    if isinstance(signature, str) and signature:
        out["extra_content"] = extra_content(signature)
        remember(call_id, signature)  # for clients that drop extra_content
    return out


def _split_parts(parts: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts:
        if "functionCall" in part:
            calls.append(_tool_call(part))
        elif isinstance(part.get("text"), str):
            (reasoning if part.get("thought") else text).append(part["text"])
    return "".join(text), "".join(reasoning), calls


def decode_response(data: dict[str, Any], model: str) -> ChatCompletion:
    _check_blocked(data)
    candidates = data.get("candidates") or []
    choices = []
    produced: dict[int, bool] = {}
    for position, candidate in enumerate(candidates):
        parts = (candidate.get("content") or {}).get("parts") or []
        text, reasoning, calls = _split_parts(parts)
        produced[int(candidate.get("index", position))] = bool(text or calls)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        if reasoning:
            message["reasoning_content"] = reasoning
        reason = finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
        if reason == "content_filter" and not text:
            message["content"] = None
        choices.append({"index": candidate.get("index", position), "message": message, "finish_reason": reason})
    _check_turn(candidates, produced)
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

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.finished = False
        self._usage_metadata: dict[str, Any] | None = None
        """The last (cumulative) ``usageMetadata``: converted once, for the usage chunk."""
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}
        self._produced: dict[int, bool] = {}

    def chunk(self, data: dict[str, Any]) -> ChatCompletionChunk | None:
        _check_blocked(data)
        if not self.id:
            self.id = _completion_id(data)
        if data.get("modelVersion"):
            self.model = data["modelVersion"]
        if data.get("usageMetadata"):
            self._usage_metadata = data["usageMetadata"]
        choices = []
        candidates = data.get("candidates") or []
        for position, candidate in enumerate(candidates):
            index = int(candidate.get("index", position))
            parts = (candidate.get("content") or {}).get("parts") or []
            text, reasoning, calls = _split_parts(parts)
            if text or calls:
                self._produced[index] = True
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
        if any(c.get("finishReason") in TOOL_FAILURES for c in candidates):
            _check_turn(candidates, self._produced)
        if not choices:
            return None
        return self._make(choices, None)

    def usage_chunk(self) -> ChatCompletionChunk | None:
        """OpenAI's final chunk for ``stream_options.include_usage``: no choices, only usage."""
        found = usage(self._usage_metadata)
        return self._make([], found) if found else None

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
