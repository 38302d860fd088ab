"""OpenAI chat shapes <-> Anthropic Messages, shared by Bedrock (InvokeModel) and Anthropic's API.

Pure functions and one small stream state machine: no HTTP here. Both hosts take the same Messages
body (Bedrock adds ``anthropic_version`` to it and takes the model from the URL) and send the same
response and stream events (Bedrock wraps each event in an event-stream ``chunk`` frame).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from llm_factory_core import ChatCompletion, ChatCompletionChunk, ChatRequest
from llm_factory_core.providers import new_completion_id

from ._json_mode import JSON_TOOL, JsonMode, JsonModeError, json_mode

__all__ = [
    "MessagesStreamState",
    "RequestError",
    "decode_message",
    "encode_messages_request",
    "map_stop_reason",
    "usage_from_anthropic",
]

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
_TOOL_ID_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*?),(?P<data>.*)$", re.DOTALL)
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class RequestError(ValueError):
    """The OpenAI request cannot be expressed for Claude (the provider turns it into a
    BadRequestError naming its deployment)."""


def map_stop_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if reason in _STOP_REASONS:
        return _STOP_REASONS[reason]
    log.warning("unknown Claude stop_reason %r mapped to 'stop'", reason)
    return "stop"


def _tool_id(value: Any) -> str:
    # Claude accepts ids matching ^[a-zA-Z0-9_-]+$; ids made by other providers may not, and the
    # same mapping is applied to a tool call and to its result so they still pair up.
    text = _TOOL_ID_BAD_CHARS.sub("_", str(value or ""))
    return text or "tool_call"


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text") or "") for part in content if isinstance(part, dict) and part.get("type") == "text"
    )


def _image_block(part: dict[str, Any], *, allow_urls: bool) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise RequestError("an image_url part has no url")
    match = _DATA_URL.match(url)
    if match:
        media = (match.group("media") or "").lower()
        if media not in _IMAGE_TYPES:
            raise RequestError(f"Claude accepts jpeg, png, gif and webp images, not {media or 'unknown'!r}")
        data = match.group("data")
        if ";base64" not in (match.group("params") or ""):
            from urllib.parse import unquote_to_bytes

            data = base64.b64encode(unquote_to_bytes(data)).decode()
        else:
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError("an image data: URL does not hold valid base64") from None
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("http://", "https://")) and allow_urls:
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise RequestError("images must be data: URLs (base64) on this host; http(s) image URLs are not fetched")


def _content_blocks(content: Any, *, allow_urls: bool) -> list[dict[str, Any]]:
    """OpenAI content (string or parts) -> Claude blocks. Empty text is dropped: Claude rejects it."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(part, allow_urls=allow_urls))
        elif kind in ("image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"):
            blocks.append(part)  # already Claude-shaped: pass through
        else:
            raise RequestError(f"content part type {kind!r} is not supported by Claude")
    return blocks


def _tool_use_blocks(tool_calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = []
    for call in tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if arguments in (None, ""):
            parsed: Any = {}
        elif isinstance(arguments, dict):
            parsed = arguments
        else:
            try:
                parsed = json.loads(arguments)
            except ValueError:
                raise RequestError(
                    f"tool call {call.get('id')!r}: arguments are not valid JSON; Claude needs an object"
                ) from None
        if not isinstance(parsed, dict):
            raise RequestError(f"tool call {call.get('id')!r}: arguments must be a JSON object")
        blocks.append(
            {"type": "tool_use", "id": _tool_id(call.get("id")), "name": function.get("name"), "input": parsed}
        )
    return blocks


def _tool_result_block(message: dict[str, Any], *, allow_urls: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(message.get("tool_call_id"))}
    content = _content_blocks(message.get("content"), allow_urls=allow_urls)
    if content:
        block["content"] = content
    if message.get("is_error"):
        block["is_error"] = True
    return block


def _messages(messages: list[dict[str, Any]], *, allow_urls: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks and the alternating user/assistant turns (consecutive same-role merged)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"))
            if text:
                system.append({"type": "text", "text": text})
            continue
        if role == "user":
            claude_role, blocks = "user", _content_blocks(message.get("content"), allow_urls=allow_urls)
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"), allow_urls=allow_urls)
            blocks += _tool_use_blocks(message.get("tool_calls") or [])
            claude_role = "assistant"
        elif role == "tool":
            claude_role, blocks = "user", [_tool_result_block(message, allow_urls=allow_urls)]
        else:
            raise RequestError(f"message role {role!r} is not supported by Claude (use tools / tool messages)")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == claude_role:
            merged = turns[-1]["content"] + blocks
            # Claude wants tool results first in a user turn (before any text).
            merged.sort(key=lambda b: 0 if b.get("type") == "tool_result" else 1)
            turns[-1]["content"] = merged
        else:
            turns.append({"role": claude_role, "content": blocks})
    if turns and turns[-1]["role"] == "assistant":
        # A final assistant turn is a prefill that Claude continues; Claude rejects one ending in
        # whitespace, so the trailing whitespace of its last text block is trimmed.
        last = turns[-1]["content"]
        if last and last[-1].get("type") == "text":
            text = last[-1]["text"].rstrip()
            if text:
                last[-1] = {**last[-1], "text": text}
            else:
                last.pop()
        if not last:
            turns.pop()
    return system, turns


def _tools(request: ChatRequest) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    tools = []
    for tool in request.tools or []:
        if tool.get("type", "function") != "function":
            tools.append(tool)  # a Claude server tool given as-is (web_search, ...)
            continue
        function = tool.get("function") or {}
        spec: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        tools.append(spec)
    choice: dict[str, Any] | None = None
    tc = request.tool_choice
    if tc == "auto":
        choice = {"type": "auto"}
    elif tc == "required":
        choice = {"type": "any"}
    elif tc == "none":
        choice = {"type": "none"}
    elif isinstance(tc, dict):
        name = (tc.get("function") or {}).get("name") or tc.get("name")
        if not name:
            raise RequestError("tool_choice names no function")
        choice = {"type": "tool", "name": name}
    elif tc is not None:
        raise RequestError(f"tool_choice {tc!r} is not supported")
    if request.parallel_tool_calls is False and tools:
        choice = {**(choice or {"type": "auto"})}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return (tools or None), (choice if tools else None)


def encode_messages_request(request: ChatRequest, *, default_max_tokens: int, allow_image_urls: bool) -> dict[str, Any]:
    """The Messages body without ``model``, ``stream`` and versions (the transports add those)."""
    if request.n not in (None, 1):
        raise RequestError("Claude returns one choice per call; n must be 1")
    system, turns = _messages([dict(m) for m in request.messages], allow_urls=allow_image_urls)
    if not turns:
        raise RequestError("the request has no user or assistant message with content")
    body: dict[str, Any] = {"max_tokens": request.max_output_tokens or default_max_tokens, "messages": turns}
    if system:
        body["system"] = system
    if request.temperature is not None:
        # OpenAI's range is 0..2, Claude's 0..1: above 1 means "as random as it gets".
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    tools, choice = _tools(request)
    try:
        mode = json_mode(request)
    except JsonModeError as exc:
        raise RequestError(str(exc)) from None
    if mode is not None:
        tools, choice = [mode.tool], {"type": "tool", "name": JSON_TOOL}
    if tools:
        body["tools"] = tools
    if choice:
        body["tool_choice"] = choice
    if request.extra_body:
        body.update(request.extra_body)
    return body


def usage_from_anthropic(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Claude's input_tokens excludes cache reads and writes; OpenAI's prompt_tokens includes them."""
    if not usage:
        return None
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _guardrail_intervened(data: dict[str, Any]) -> bool:
    return data.get("amazon-bedrock-guardrailAction") == "INTERVENED"


def decode_message(data: Any, *, model: str, json_answer: JsonMode | None = None) -> ChatCompletion:
    """An Anthropic ``Message`` -> ChatCompletion. Raises ValueError for a body of another shape.
    With ``json_answer`` (a ``response_format`` request), the forced tool's input is the text."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("the reply is not a Claude message")
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls = []
    for block in data["content"]:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
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
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    finish = "content_filter" if _guardrail_intervened(data) else map_stop_reason(data.get("stop_reason"))
    if finish == "tool_calls" and not tool_calls:
        finish = "stop"  # the forced JSON tool: an answer, not a call to make
    return ChatCompletion.model_validate(
        {
            "id": data.get("id") or new_completion_id(),
            "created": int(time.time()),
            "model": data.get("model") or model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
            "usage": usage_from_anthropic(data.get("usage")),
        }
    )


class MessagesStreamState:
    """Claude stream events -> OpenAI chunks.

    The finish chunk (and the usage chunk, when asked for) is sent at ``message_stop`` because the
    final usage only arrives with ``message_delta`` / Bedrock's invocation metrics; a stream cut
    after ``message_delta`` still finishes (``close``). Tool calls get OpenAI indices: the ordinal
    of the tool call, not Claude's content block index.
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
        self.guardrail = False
        self.finished = False
        self._tool_index: dict[int, int] = {}

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
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and self.json_answer is not None and block.get("name") == JSON_TOOL:
                self._json_block = int(event.get("index", 0))
                return []
            if block.get("type") == "tool_use":
                index = self._tool_index.setdefault(int(event.get("index", 0)), len(self._tool_index))
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if dtype == "input_json_delta" and delta.get("partial_json"):
                block_index = int(event.get("index", 0))
                if block_index == self._json_block:
                    return self._json_delta(delta["partial_json"])
                index = self._tool_index.setdefault(block_index, len(self._tool_index))
                call = {"index": index, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            if dtype == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            return []
        if kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
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
        if kind == "content_block_stop" and self._json_parts and int(event.get("index", 0)) == self._json_block:
            return self._json_end()
        return []  # ping, other content_block_stop, unknown future events

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
        finish = "content_filter" if self.guardrail else (map_stop_reason(self.stop_reason) or "stop")
        if finish == "tool_calls" and not self._tool_index:
            finish = "stop"  # the forced JSON tool: an answer, not a call to make
        out = [self._chunk({}, finish)]
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
