"""OpenAI chat requests -> Anthropic Messages bodies, shared by Bedrock (InvokeModel) and Anthropic's API.

Pure functions: no HTTP here. Both hosts take the same Messages body (Bedrock adds
``anthropic_version`` and takes the model from the URL). Linear in the size of the conversation:
consecutive same-role messages are merged by appending, and each turn is ordered once at the end
(a gateway must not let one long request freeze its event loop).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from llm_factory_core import ChatRequest
from llm_factory_core.dialects.anthropic import image_block

from ._json_mode import JSON_TOOL, JsonModeError, json_mode, native_format
from ._models import ModelInfo, model_info
from ._models import default_max_tokens as family_max_tokens
from ._thinking import (
    THINKING_TYPES,
    client_blocks,
    fit_max_tokens,
    recall_blocks,
    thinking_for_effort,
)

__all__ = [
    "OPENAI_ONLY_FIELDS",
    "RequestError",
    "StructuredOutput",
    "encode_messages_request",
    "json_answer_mode",
    "use_native_json",
]

StructuredOutput = Literal["auto", "native", "tool"]

log = logging.getLogger("llm_factory_claude")

_TOOL_ID_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class RequestError(ValueError):
    """The OpenAI request cannot be expressed for Claude (the provider turns it into a
    BadRequestError naming its deployment)."""


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
    try:  # the Messages dialect's own block (the gateway's /v1/messages door reads images back with it)
        block = image_block(url, allow_urls=allow_urls)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if block is None:
        raise RequestError("images must be data: URLs (base64) on this host; http(s) image URLs are not fetched")
    return block


def _cache_control(source: Mapping[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Prompt caching: an OpenAI part's (or message's, or tool's) ``cache_control`` reaches Claude
    unchanged (the same field on Anthropic and Bedrock InvokeModel)."""
    marker = source.get("cache_control")
    if marker is not None:
        target["cache_control"] = marker
    return target


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
                blocks.append(_cache_control(part, {"type": "text", "text": str(part["text"])}))
        elif kind == "image_url":
            blocks.append(_cache_control(part, _image_block(part, allow_urls=allow_urls)))
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
        block = {"type": "tool_use", "id": _tool_id(call.get("id")), "name": function.get("name"), "input": parsed}
        blocks.append(_cache_control(call, block))
    return blocks


def _tool_result_block(message: dict[str, Any], *, allow_urls: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(message.get("tool_call_id"))}
    content = _content_blocks(message.get("content"), allow_urls=allow_urls)
    if content:
        block["content"] = content
    if message.get("is_error"):
        block["is_error"] = True
    return _cache_control(message, block)


def _system_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A system message as text blocks: one per message, or one per part (each keeping its
    ``cache_control``) when any part is a cache breakpoint."""
    content = message.get("content")
    parts = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    if any(p.get("cache_control") for p in parts):
        blocks = [
            _cache_control(p, {"type": "text", "text": str(p["text"])})
            for p in parts
            if p.get("type") == "text" and p.get("text")
        ]
    else:
        text = _text_of(content)
        blocks = [{"type": "text", "text": text}] if text else []
    if blocks and message.get("cache_control") is not None:
        blocks[-1] = _cache_control(message, dict(blocks[-1]))
    return blocks


def _ordered(role: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claude wants tool results first in a user turn and thinking first in an assistant turn:
    one stable partition per turn (never a sort per merged message, which was quadratic)."""
    first = "tool_result" if role == "user" else None
    if first is None and blocks and blocks[0].get("type") in THINKING_TYPES:
        return blocks  # already led by thinking (Claude's own order, interleaved blocks kept as sent)
    head = [b for b in blocks if (b.get("type") == first if first else b.get("type") in THINKING_TYPES)]
    if not head or len(head) == len(blocks):
        return blocks
    return head + [b for b in blocks if (b.get("type") != first if first else b.get("type") not in THINKING_TYPES)]


def _messages(
    messages: list[dict[str, Any]], *, allow_urls: bool, thinking: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks and the alternating user/assistant turns (consecutive same-role merged).
    With ``thinking``, an assistant message's signed thinking blocks are rebuilt at its head, from
    ``thinking_blocks`` or from the reasoning memory (by tool-call id)."""
    system: list[dict[str, Any]] = []
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system += _system_blocks(message)
            continue
        if role == "user":
            claude_role, blocks = "user", _content_blocks(message.get("content"), allow_urls=allow_urls)
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            blocks = _content_blocks(message.get("content"), allow_urls=allow_urls) + _tool_use_blocks(calls)
            claude_role = "assistant"
            if thinking and blocks:
                head = client_blocks(message) or (recall_blocks(calls) if calls else None)
                if head:
                    blocks = head + blocks
        elif role == "tool":
            claude_role, blocks = "user", [_tool_result_block(message, allow_urls=allow_urls)]
        else:
            raise RequestError(f"message role {role!r} is not supported by Claude (use tools / tool messages)")
        if not blocks:
            continue
        if message.get("cache_control") is not None and role != "tool":
            blocks[-1] = _cache_control(message, dict(blocks[-1]))
        if merged and merged[-1][0] == claude_role:
            merged[-1][1].extend(blocks)  # amortised O(1) per block
        else:
            merged.append((claude_role, blocks))
    turns: list[dict[str, Any]] = [{"role": r, "content": _ordered(r, blocks)} for r, blocks in merged]
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


def _tool_loop_lacks_thinking(turns: list[dict[str, Any]]) -> bool:
    """Whether the assistant turn of the current tool loop (its last ``tool_use`` turn after the last
    user turn that is not only tool results) does not start with a thinking block: with thinking
    on, Anthropic rejects that turn ("Expected `thinking` or `redacted_thinking`...")."""
    for turn in reversed(turns):
        blocks = turn["content"]
        if turn["role"] == "user":
            if any(b.get("type") != "tool_result" for b in blocks):
                return False
            continue
        if any(b.get("type") == "tool_use" for b in blocks):
            return blocks[0].get("type") not in THINKING_TYPES
    return False


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
        _cache_control(function, spec)
        _cache_control(tool, spec)
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


OPENAI_ONLY_FIELDS = frozenset(
    {
        "store",
        "verbosity",
        "prediction",
        "modalities",
        "audio",
        "web_search_options",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "functions",
        "function_call",
    }
)
"""OpenAI request fields Claude has no counterpart for: dropped rather than sent (Claude rejects
unknown fields). Every other top-level unknown field is a Claude field a gateway client sent with
the OpenAI SDK's ``extra_body`` (``thinking``, ``top_k``, ``output_config``, ``cache_control``...)."""


def _extras(request: ChatRequest) -> dict[str, Any]:
    """Top-level unknown fields, then ``extra_body`` (library callers) over them."""
    extras: dict[str, Any] = {}
    for key, value in (request.model_extra or {}).items():
        if value is None or key in OPENAI_ONLY_FIELDS:
            continue
        # Same names, other shapes: OpenAI's metadata (any keys) and service tiers.
        if key == "metadata" and not (isinstance(value, dict) and set(value) <= {"user_id"}):
            continue
        if key == "service_tier" and value not in ("auto", "standard_only"):
            continue
        extras[key] = value
    if request.extra_body:
        extras.update(request.extra_body)
    return extras


def use_native_json(request: ChatRequest, info: ModelInfo, policy: StructuredOutput) -> bool:
    """``output_config.format`` for a json_schema ``response_format`` on models that have it
    (works with tools and thinking); otherwise the forced-tool emulation (``_json_mode``)."""
    return policy != "tool" and (policy == "native" or info.native_json) and native_format(request) is not None


def json_answer_mode(request: ChatRequest, *, model: str, structured_output: StructuredOutput = "auto") -> Any:
    """The forced-tool JsonMode the reply decoder needs, or None (plain text or native JSON)."""
    if use_native_json(request, model_info(model), structured_output):
        return None
    return json_mode(request)


def _thinking_config(
    request: ChatRequest, extras: dict[str, Any], info: ModelInfo
) -> tuple[dict[str, Any] | None, str | None]:
    """The caller's own ``thinking`` wins; else ``reasoning_effort`` becomes Claude's control."""
    effort = request.reasoning_effort
    try:
        mapped, level = thinking_for_effort(effort, info) if effort else (None, None)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    given = extras.pop("thinking", None)
    if isinstance(given, dict):
        return given, level
    return mapped, level


def encode_messages_request(
    request: ChatRequest,
    *,
    default_max_tokens: int | None = None,
    allow_image_urls: bool,
    model: str = "",
    structured_output: StructuredOutput = "auto",
) -> dict[str, Any]:
    """The Messages body without ``model``, ``stream`` and versions (the transports add those).
    ``model`` (the upstream id) selects the family's controls (``_models``)."""
    if request.n not in (None, 1):
        raise RequestError("Claude returns one choice per call; n must be 1")
    info = model_info(model)
    extras = _extras(request)
    thinking, effort = _thinking_config(request, extras, info)
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    native = use_native_json(request, info, structured_output)
    try:
        mode = None if native else json_mode(request)
    except JsonModeError as exc:
        raise RequestError(str(exc)) from None
    if thinking_on and mode is not None:
        log.warning("thinking turned off for this request: JSON mode on %s is a forced tool call", model or "Claude")
        thinking_on, thinking = False, None
    messages = [dict(m) for m in request.messages]
    system, turns = _messages(messages, allow_urls=allow_image_urls, thinking=thinking_on)
    if thinking_on and _tool_loop_lacks_thinking(turns):
        # A tool loop begun elsewhere (another provider, or a client that dropped the blocks and a
        # process that forgot them): Anthropic allows it only with thinking off.
        log.warning("thinking turned off for this request: its tool-use turn has no Claude thinking blocks")
        thinking_on, thinking = False, None
        system, turns = _messages(messages, allow_urls=allow_image_urls, thinking=False)
    if not turns:
        raise RequestError("the request has no user or assistant message with content")
    max_tokens = request.max_output_tokens or default_max_tokens or family_max_tokens(info)
    body: dict[str, Any] = {"max_tokens": max_tokens, "messages": turns}
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
    if mode is not None:
        tools, choice = [mode.tool], {"type": "tool", "name": JSON_TOOL}
    if tools:
        body["tools"] = tools
    if choice:
        body["tool_choice"] = choice
    if thinking is not None:
        body["thinking"] = thinking
    output_config: dict[str, Any] = {}
    if effort:
        output_config["effort"] = effort
    if native:
        output_config["format"] = native_format(request)
    given = extras.pop("output_config", None)
    if isinstance(given, dict):
        output_config.update(given)
    body.update(extras)
    if output_config:
        body["output_config"] = output_config
    fit_max_tokens(body, info)
    return body
