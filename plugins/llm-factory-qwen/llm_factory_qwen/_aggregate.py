"""A stream of ``ChatCompletionChunk`` -> one ``ChatCompletion`` (pure, provider-neutral).

Used where a model only streams but the caller asked for a plain reply. Nothing here knows
DashScope: it works on any OpenAI-shaped chunk stream (and is meant to move to the core).

- content, ``refusal`` and ``reasoning_content`` are concatenated per choice;
- tool calls are assembled by ``index`` as OpenAI clients do (id, type and name from the
  fragment that carries them, ``arguments`` concatenated, other keys such as ``extra_content``
  kept, the latest value winning);
- other unknown delta fields: lists are extended (``thinking_blocks``), strings concatenated,
  anything else the latest value wins;
- ``logprobs.content`` / ``logprobs.refusal`` lists are concatenated;
- the finish reason is the last one seen; usage the last one seen (cumulative, or the final
  usage chunk); id, created, model and system_fingerprint from the first chunk that has them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any

from llm_factory_core import ChatCompletion, ChatCompletionChunk

__all__ = ["ChunkAggregator", "aggregate_chunks", "aggregate_stream"]

_TEXT_FIELDS = ("content", "refusal", "reasoning_content")
_SKIP = frozenset({"role", "tool_calls", *_TEXT_FIELDS})


class _Choice:
    __slots__ = ("calls", "extras", "finish", "logprobs", "text")

    def __init__(self) -> None:
        self.text: dict[str, list[str]] = {}
        self.calls: dict[int, dict[str, Any]] = {}
        self.extras: dict[str, Any] = {}
        self.finish: str | None = None
        self.logprobs: dict[str, Any] | None = None

    def add_delta(self, delta: dict[str, Any]) -> None:
        for name in _TEXT_FIELDS:
            value = delta.get(name)
            if isinstance(value, str) and value:
                self.text.setdefault(name, []).append(value)
        for call in delta.get("tool_calls") or ():
            self._add_call(call)
        for name, value in delta.items():
            if name in _SKIP or value is None:
                continue
            old = self.extras.get(name)
            if isinstance(value, list) and isinstance(old, list):
                old.extend(value)
            elif isinstance(value, str) and isinstance(old, str):
                self.extras[name] = old + value
            else:
                self.extras[name] = list(value) if isinstance(value, list) else value

    def _add_call(self, fragment: dict[str, Any]) -> None:
        call = self.calls.setdefault(fragment["index"], {"arguments": []})
        for key, value in fragment.items():
            if key in ("index", "function") or value is None:
                continue
            if key == "id" and not value:
                continue
            call[key] = value
        function = fragment.get("function") or {}
        if function.get("name"):
            call["name"] = function["name"]
        if function.get("arguments"):
            call["arguments"].append(function["arguments"])

    def add_logprobs(self, logprobs: dict[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        for key, value in logprobs.items():
            old = self.logprobs.get(key)
            if isinstance(value, list) and isinstance(old, list):
                old.extend(value)
            else:
                self.logprobs[key] = list(value) if isinstance(value, list) else value

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant"}
        tool_calls = []
        for index in sorted(self.calls):
            call = dict(self.calls[index])
            arguments = "".join(call.pop("arguments"))
            name = call.pop("name", "")
            call.setdefault("type", "function")
            call.setdefault("id", "")
            call["function"] = {"name": name, "arguments": arguments}
            tool_calls.append(call)
        content = "".join(self.text.get("content", ()))
        message["content"] = content if content or not tool_calls else None
        for name in ("refusal", "reasoning_content"):
            if name in self.text:
                message[name] = "".join(self.text[name])
        if tool_calls:
            message["tool_calls"] = tool_calls
        message.update(self.extras)
        return message


class ChunkAggregator:
    """Feed chunks with ``add``; ``result()`` builds the ``ChatCompletion``."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: Any = None
        self.count = 0

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.count += 1
        data = chunk.model_dump(exclude_none=True)
        for key in ("id", "created", "model", "system_fingerprint"):
            if key not in self._head and data.get(key):
                self._head[key] = data[key]
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or ():
            state = self._choices.setdefault(choice.get("index", 0), _Choice())
            state.add_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                state.finish = choice["finish_reason"]
            if isinstance(choice.get("logprobs"), dict):
                state.add_logprobs(choice["logprobs"])

    def result(self) -> ChatCompletion:
        """The aggregated reply; ValueError when no chunk came (nothing to build from)."""
        if not self.count:
            raise ValueError("cannot aggregate an empty stream")
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            choice: dict[str, Any] = {
                "index": index,
                "message": state.message(),
                "finish_reason": state.finish or "stop",
            }
            if state.logprobs is not None:
                choice["logprobs"] = state.logprobs
            choices.append(choice)
        data: dict[str, Any] = {"object": "chat.completion", **self._head, "choices": choices}
        data.setdefault("id", "")
        data.setdefault("created", 0)
        data.setdefault("model", "")
        if self._usage is not None:
            data["usage"] = self._usage
        return ChatCompletion.model_validate(data)


def aggregate_chunks(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletion:
    """The ``ChatCompletion`` a stream of chunks adds up to."""
    aggregator = ChunkAggregator()
    for chunk in chunks:
        aggregator.add(chunk)
    return aggregator.result()


async def aggregate_stream(chunks: AsyncIterable[ChatCompletionChunk]) -> ChatCompletion:
    """``aggregate_chunks`` for an async stream (read to its end; errors propagate)."""
    aggregator = ChunkAggregator()
    async for chunk in chunks:
        aggregator.add(chunk)
    return aggregator.result()
