"""Anthropic's Messages API as a dialect over the chat model, both directions, pure functions.

Inbound (a ``POST /v1/messages`` body) to a ``ChatRequest``; outbound (a ``ChatCompletion``) to an
Anthropic ``Message``; the chunk stream's event sequence is ``anthropic_stream``. The block-level
pieces (images, usage, stop reasons, signed thinking blocks) are shared with the encoder that
speaks Messages to an upstream. Nothing here knows a provider.

Mapping (Messages -> chat): ``system`` (string or text blocks) -> system messages, one per block
(a block with ``cache_control`` as a part carrying it); text and image blocks -> content parts (base64 ->
``data:`` URL, url -> its URL; ``cache_control`` kept); ``tool_use`` -> ``tool_calls``;
``tool_result`` -> ``tool`` messages in place (``is_error`` and ``cache_control`` kept on the
message); ``thinking`` / ``redacted_thinking`` -> the assistant's ``thinking_blocks`` (exactly as
sent, signatures included) and ``reasoning_content``; ``tools`` (``input_schema``) -> function
tools; ``tool_choice`` auto/any/tool/none -> auto/required/function/none
(``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``); ``stop_sequences`` -> ``stop``;
``metadata.user_id`` -> ``user``. With ``native`` (every upstream speaks Messages and reads
Anthropic's own fields as request extras), ``thinking``, ``top_k``, server tools, ``document``
blocks and the other Messages-only fields ride as they are; otherwise ``thinking`` becomes
``reasoning_effort``, blocks and tools no other API has are refused with a clear error, and
fields without effect are reported (``MessagesRequest.ignored``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from .._errors import InvalidRequestError
from .._request import ChatRequest
from .._types import ChatCompletion

__all__ = [
    "ERROR_PREFIX",
    "NATIVE_FIELDS",
    "MessagesRequest",
    "chat_request_from_messages",
    "content_blocks",
    "estimate_input_tokens",
    "image_block",
    "image_part",
    "message_from_completion",
    "new_message_id",
    "stop_reason_from_finish",
    "thinking_block",
    "usage_from_anthropic",
    "usage_to_anthropic",
]

NATIVE_FIELDS = frozenset(
    {
        "top_k",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
        "inference_geo",
        "cache_control",
    }
)
"""Messages fields with no chat counterpart: passed as request extras to upstreams that speak
Messages, reported as ignored elsewhere."""

_OWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "stream",
        *NATIVE_FIELDS,
    }
)
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*?),(?P<data>.*)$", re.DOTALL)
_TOOL_CACHE = "tools[].cache_control"
ERROR_PREFIX = "Error: "
"""Leads a failed tool's result for upstreams without ``is_error``."""
_NATIVE_BLOCKS = frozenset({"document", "search_result", "container_upload"})
"""Content blocks only a Messages upstream understands (passed through as they are)."""


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _fail(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


# -- block-level pieces, shared by both directions ----------------------------------------------


def image_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An Anthropic image block as an OpenAI ``image_url`` part (``cache_control`` kept)."""
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise _fail(f"{where}.source: an image needs a source", where)
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if media not in _IMAGE_TYPES or not isinstance(data, str) or not data:
            raise _fail(f"{where}.source: base64 images need media_type (jpeg, png, gif, webp) and data", where)
        url = f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise _fail(f"{where}.source.type {kind!r} is not supported (base64 and url are)", where)
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def image_block(url: str, *, allow_urls: bool) -> dict[str, Any] | None:
    """An image URL as an Anthropic image block: a ``data:`` URL -> a base64 source (percent-encoded
    bytes are encoded), an http(s) URL -> a url source (when ``allow_urls``); None when it is
    neither (the caller says why). Raises ValueError, saying why, for a data URL of a type
    Anthropic does not take or that does not hold valid base64."""
    match = _DATA_URL.match(url)
    if match:
        media = (match.group("media") or "").lower()
        if media not in _IMAGE_TYPES:
            raise ValueError(f"Claude accepts jpeg, png, gif and webp images, not {media or 'unknown'!r}")
        data = match.group("data")
        if ";base64" not in (match.group("params") or ""):
            data = base64.b64encode(unquote_to_bytes(data)).decode()
        else:
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("an image data: URL does not hold valid base64") from None
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if allow_urls and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def thinking_block(block: Any) -> dict[str, Any] | None:
    """A signed thinking block reduced to the fields Anthropic defines, values untouched (so it
    goes back byte for byte); None for anything else (unsigned reasoning cannot go back)."""
    if not isinstance(block, Mapping):
        return None
    kind = block.get("type")
    if kind == "thinking" and isinstance(block.get("signature"), str) and block["signature"]:
        return {"type": "thinking", "thinking": str(block.get("thinking") or ""), "signature": block["signature"]}
    if kind == "redacted_thinking" and isinstance(block.get("data"), str) and block["data"]:
        return {"type": "redacted_thinking", "data": block["data"]}
    return None


def usage_from_anthropic(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Anthropic's usage as OpenAI's. Anthropic's ``input_tokens`` excludes cache reads and
    writes, OpenAI's ``prompt_tokens`` includes them; reads are ``cached_tokens``, writes
    ``cache_write_tokens`` (openai-python's CompletionUsage)."""
    if not usage:
        return None
    cached = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + written
    completion = int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    details = {}
    if cached:
        details["cached_tokens"] = cached
    if written:
        details["cache_write_tokens"] = written
    if details:
        out["prompt_tokens_details"] = details
    return out


def usage_to_anthropic(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI's usage as Anthropic's (the inverse of ``usage_from_anthropic``)."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached - written),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_KEPT_STOP_REASONS = frozenset({"stop_sequence", "pause_turn", "refusal", "model_context_window_exceeded"})


def stop_reason_from_finish(finish_reason: str | None, upstream_reason: Any = None) -> str:
    """OpenAI's ``finish_reason`` as Anthropic's ``stop_reason``; an upstream that spoke Messages
    reports its own reason beside it (``choice.stop_reason``), which wins where chat has none."""
    if isinstance(upstream_reason, str) and upstream_reason in _KEPT_STOP_REASONS:
        return upstream_reason
    return _STOP_REASONS.get(finish_reason or "", "end_turn")


# -- inbound: Messages -> chat ------------------------------------------------------------------


@dataclass
class MessagesRequest:
    """The chat request for a Messages body, and the body's fields that had no effect."""

    chat: ChatRequest
    ignored: list[str] = field(default_factory=list)


def _text_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{where}.text must be a string", where)
    part: dict[str, Any] = {"type": "text", "text": text}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _collapse(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One plain text part is a string (what every upstream takes); anything else stays parts."""
    if len(parts) == 1 and parts[0]["type"] == "text" and "cache_control" not in parts[0]:
        return str(parts[0]["text"])
    return parts


def _user_part(block: Mapping[str, Any], where: str, native: bool) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return _text_part(block, where)
    if kind == "image":
        return image_part(block, where)
    if kind in _NATIVE_BLOCKS and native:
        return dict(block)  # Claude-shaped: its encoder passes it through
    raise _fail(f"{where}: content block type {kind!r} is not supported by this model's deployments", where)


def _tool_message(block: Mapping[str, Any], where: str, native: bool) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.tool_use_id is required", where)
    content = block.get("content")
    if content is None:
        text: Any = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = [_user_part(b, f"{where}.content[{i}]", native) for i, b in enumerate(content) if isinstance(b, dict)]
        text = _collapse(parts) if parts else ""
    else:
        raise _fail(f"{where}.content must be a string or a list of blocks", where)
    if block.get("is_error") and not native:
        # Chat APIs have no error flag on a tool result (their encoders drop unknown fields): the
        # model is told in the text instead.
        text = ERROR_PREFIX + text if isinstance(text, str) else [{"type": "text", "text": ERROR_PREFIX}, *text]
    message: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": text}
    if block.get("is_error") and native:
        message["is_error"] = True
    if block.get("cache_control") is not None:
        message["cache_control"] = block["cache_control"]
    return message


def _user_messages(content: list[Any], where: str, native: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(block, dict):
            raise _fail(f"{at} must be an object", at)
        if block.get("type") == "tool_result":
            if parts:  # keep the order the client sent
                out.append({"role": "user", "content": _collapse(parts)})
                parts = []
            out.append(_tool_message(block, at, native))
        else:
            parts.append(_user_part(block, at, native))
    if parts:
        out.append({"role": "user", "content": _collapse(parts)})
    return out


def _tool_call(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise _fail(f"{where}: tool_use needs an id and a name", where)
    arguments = block.get("input") if block.get("input") is not None else {}
    if not isinstance(arguments, dict):
        raise _fail(f"{where}.input must be an object", where)
    call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }
    if block.get("cache_control") is not None:
        call["cache_control"] = block["cache_control"]
    return call


def _assistant_messages(content: list[Any], where: str) -> list[dict[str, Any]]:
    """An assistant turn: thinking blocks lead its message; a thinking block after text or a tool
    call (interleaved thinking) starts a new message, so an upstream that rebuilds the turn from
    consecutive messages keeps Claude's order."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {"role": "assistant", "content": None}
    parts: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal current, parts
        if parts:
            current["content"] = _collapse(parts)
        if parts or current.get("tool_calls") or current.get("thinking_blocks"):
            out.append(current)
        current, parts = {"role": "assistant", "content": None}, []

    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(block, dict):
            raise _fail(f"{at} must be an object", at)
        kind = block.get("type")
        if kind in ("thinking", "redacted_thinking"):
            if parts or current.get("tool_calls"):
                flush()
            signed = thinking_block(block)
            if signed is None:
                raise _fail(f"{at}: a {kind} block needs its signature (thinking) or data (redacted_thinking)", at)
            current.setdefault("thinking_blocks", []).append(signed)
            if kind == "thinking":
                current["reasoning_content"] = current.get("reasoning_content", "") + signed["thinking"]
        elif kind == "text":
            parts.append(_text_part(block, at))
        elif kind == "tool_use":
            current.setdefault("tool_calls", []).append(_tool_call(block, at))
        else:
            raise _fail(f"{at}: assistant block type {kind!r} is not supported by this gateway", at)
    flush()
    return out


def _system(system: Any) -> list[dict[str, Any]]:
    """System blocks as system messages, one per block (so an upstream that speaks Messages
    rebuilds the same blocks; a block with ``cache_control`` is a part that carries it)."""
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise _fail("system must be a string or a list of text blocks", "system")
    out = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail(f"system[{i}] must be a text block", "system")
        out.append({"role": "system", "content": _collapse([_text_part(block, f"system[{i}]")])})
    return out


def _tools(tools: Any, native: bool, ignored: list[str]) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    if not isinstance(tools, list):
        raise _fail("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _fail(f"tools[{i}] must be an object", "tools")
        if tool.get("type") in (None, "custom") and "input_schema" in tool:
            function = {"name": tool.get("name"), "parameters": tool["input_schema"]}
            if tool.get("description"):
                function["description"] = tool["description"]
            spec: dict[str, Any] = {"type": "function", "function": function}
            # Chat APIs reject unknown keys on a tool, and their encoders pass tools as they are:
            # the marker goes only to upstreams that speak Messages (reported as ignored elsewhere).
            if tool.get("cache_control") is not None:
                if native:
                    spec["cache_control"] = tool["cache_control"]
                elif _TOOL_CACHE not in ignored:
                    ignored.append(_TOOL_CACHE)
            out.append(spec)
        elif native:
            out.append(dict(tool))  # a server tool (web search, code execution...): as it is
        else:
            raise _fail(
                f"tools[{i}]: tool type {tool.get('type')!r} needs a Claude deployment (custom tools with "
                "input_schema work everywhere)",
                "tools",
            )
    return out


def _tool_choice(choice: Any, data: dict[str, Any]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise _fail("tool_choice must be an object such as {'type': 'auto'}", "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        data["tool_choice"] = "auto"
    elif kind == "any":
        data["tool_choice"] = "required"
    elif kind == "none":
        data["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        data["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _fail("tool_choice.type must be auto, any, tool (with a name) or none", "tool_choice")
    if choice.get("disable_parallel_tool_use"):
        data["parallel_tool_calls"] = False


def _effort(thinking: Mapping[str, Any], output_config: Any) -> str | None:
    """Anthropic's thinking config as an OpenAI ``reasoning_effort`` (for other upstreams)."""
    kind = thinking.get("type")
    if kind == "disabled":
        return None
    if kind == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        return str(effort) if effort else "high"  # Anthropic's default effort is high
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 4096 else ("medium" if budget < 16_384 else "high")


def _output_config(config: Any, data: dict[str, Any], ignored: list[str], *, thinking: bool) -> None:
    """``output_config`` for chat APIs: ``format`` (a JSON schema) -> ``response_format``;
    ``effort`` -> ``reasoning_effort`` (already read from it when ``thinking`` is given)."""
    if not isinstance(config, dict):
        raise _fail("output_config must be an object", "output_config")
    for key, value in config.items():
        if key == "effort" and isinstance(value, str):
            if not thinking:
                data["reasoning_effort"] = value
        elif key == "format" and isinstance(value, dict) and value.get("type") == "json_schema":
            schema = {"name": "output", "schema": value.get("schema") or {}}
            data["response_format"] = {"type": "json_schema", "json_schema": schema}
        else:
            ignored.append(f"output_config.{key}")


def chat_request_from_messages(
    body: dict[str, Any], *, native: bool, betas: list[str] | None = None, count_only: bool = False
) -> MessagesRequest:
    """The chat request for a Messages body. ``native``: every upstream speaks Messages (its own
    fields ride as request extras); ``betas``: the ``anthropic-beta`` flags (sent to native
    upstreams, ignored elsewhere); ``count_only``: a count_tokens body (no ``max_tokens``)."""
    unknown = sorted(set(body) - _OWN)
    if unknown:
        raise _fail(f"{unknown[0]}: Extra inputs are not permitted", unknown[0])
    if not count_only and not isinstance(body.get("max_tokens"), int):
        raise _fail("max_tokens: Field required (an integer)", "max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _fail("messages: at least one message is required", "messages")
    messages: list[dict[str, Any]] = []
    messages += _system(body.get("system"))
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _fail(f"{where}.role must be 'user' or 'assistant'", "messages")
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
        elif isinstance(content, list):
            if message["role"] == "user":
                messages += _user_messages(content, where, native)
            else:
                messages += _assistant_messages(content, where)
        else:
            raise _fail(f"{where}.content must be a string or a list of blocks", "messages")
    ignored: list[str] = []
    data: dict[str, Any] = {"messages": messages, "model": body.get("model")}
    if not count_only:
        data["max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            data[key] = body[key]
    stops = body.get("stop_sequences")
    if stops:
        if native and len(stops) > 4:
            data["stop_sequences"] = list(stops)  # Messages takes more than chat's four
        else:
            data["stop"] = list(stops)
    if tools := _tools(body.get("tools"), native, ignored):
        data["tools"] = tools
    _tool_choice(body.get("tool_choice"), data)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        data["user"] = metadata["user_id"]
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if native:
            data["thinking"] = thinking
        elif (effort := _effort(thinking, body.get("output_config"))) is not None:
            data["reasoning_effort"] = effort
    for key in sorted(NATIVE_FIELDS & set(body)):
        if native:
            data[key] = body[key]
        elif key == "output_config":
            _output_config(body[key], data, ignored, thinking=isinstance(thinking, dict))
        else:
            ignored.append(key)
    if betas:
        if native:
            data["anthropic_beta"] = list(betas)
        else:
            ignored.append("anthropic-beta")
    if body.get("stream") and not count_only:
        data.update(stream=True, stream_options={"include_usage": True})
    try:
        return MessagesRequest(ChatRequest.model_validate(data), ignored)
    except ValueError as exc:  # pydantic: a value out of range (temperature...), said plainly
        lines = str(exc).splitlines()
        raise _fail(" ".join(line.strip() for line in lines[1:3]) or lines[0]) from None


# -- outbound: chat -> Messages -----------------------------------------------------------------


def _input_of(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments) if arguments else {}
    except ValueError:
        return {}  # cut short (max_tokens): Anthropic's input is an object
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def content_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An OpenAI assistant message as Anthropic content blocks: thinking (signed blocks as they
    came, else the reasoning text with an empty signature), text, tool_use."""
    blocks: list[dict[str, Any]] = []
    signed = [b for b in (thinking_block(x) for x in message.get("thinking_blocks") or []) if b is not None]
    if signed:
        blocks += signed
    elif message.get("reasoning_content"):
        blocks.append({"type": "thinking", "thinking": str(message["reasoning_content"]), "signature": ""})
    content = message.get("content")
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                "name": function.get("name") or "",
                "input": _input_of(function.get("arguments")),
            }
        )
    return blocks


def message_from_completion(completion: ChatCompletion, *, message_id: str | None = None) -> dict[str, Any]:
    """A ChatCompletion as an Anthropic ``Message``."""
    choice = completion.choices[0].model_dump(exclude_none=True)
    usage = completion.usage.model_dump(exclude_none=True) if completion.usage else None
    return {
        "id": message_id or (completion.id if completion.id.startswith("msg_") else new_message_id()),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content_blocks(choice.get("message") or {}),
        "stop_reason": stop_reason_from_finish(choice.get("finish_reason"), choice.get("stop_reason")),
        "stop_sequence": choice.get("stop_sequence"),
        "usage": usage_to_anthropic(usage),
    }


# -- count_tokens estimate ----------------------------------------------------------------------

IMAGE_TOKENS = 1600
"""An image's estimated cost: Anthropic's formula (width x height / 750) at its 1.15-megapixel cap."""
MESSAGE_OVERHEAD = 4
"""Tokens per message for its role and framing (OpenAI's and Anthropic's docs both cite a few)."""


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """A documented estimate where no counter exists: ceil(characters / 4) over the flattened text
    (system, every text, tool input, tool result, thinking block, and the tools' JSON), plus
    ``MESSAGE_OVERHEAD`` per message and ``IMAGE_TOKENS`` per image."""
    chars = 0
    images = 0

    def walk(value: Any) -> None:
        nonlocal chars, images
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            kind = value.get("type")
            if kind == "image":
                images += 1
            elif kind == "tool_use":
                chars += len(str(value.get("name") or "")) + len(json.dumps(value.get("input") or {}))
            elif kind in ("text", "thinking"):
                walk(value.get(kind))
            elif kind == "tool_result":
                walk(value.get("content"))
            elif kind == "redacted_thinking":
                chars += len(str(value.get("data") or "")) // 4  # encrypted: a rough share of its size

    walk(body.get("system"))
    messages = body.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            walk(message.get("content"))
    if body.get("tools"):
        chars += len(json.dumps(body["tools"]))
    return math.ceil(chars / 4) + MESSAGE_OVERHEAD * len(messages) + IMAGE_TOKENS * images
