"""OpenAI's Responses API as a dialect over the chat model, both directions, pure functions.

Inbound (a ``POST /v1/responses`` body, plus the stored history of ``previous_response_id``) to a
``ChatRequest``; outbound (a ``ChatCompletion``, or a chunk stream) to a Response object and its
semantic event sequence. Nothing here knows a provider.

Mapping (chat <-> Responses): system/developer/user/assistant messages <-> ``message`` items;
``tool_calls`` <-> ``function_call`` items (``call_id`` = tool-call id); ``tool`` messages <->
``function_call_output`` items; ``reasoning_content`` <-> a ``reasoning`` item whose ``content`` is
``reasoning_text`` (signed thinking blocks ride in its ``encrypted_content``, so a Claude tool
loop keeps its signatures through this door); ``max_output_tokens`` -> ``max_completion_tokens``;
``text.format`` -> ``response_format``; ``reasoning.effort`` -> ``reasoning_effort``. What cannot be
carried (built-in tools such as web search) is refused with a clear error; what is accepted but has
no effect is reported by ``ignored_fields``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from .._errors import InvalidRequestError
from .._request import ChatRequest
from .._types import ChatCompletion

__all__ = [
    "IGNORED_FIELDS",
    "chat_request_from_responses",
    "input_items",
    "new_response_id",
    "output_items_from_completion",
    "response_object",
    "usage_from_chat",
]

IGNORED_FIELDS = frozenset(
    {"include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier", "background"}
)
"""Accepted for compatibility, without effect here (named in a reply header, never silently)."""

_PASSED = ("temperature", "top_p", "user", "parallel_tool_calls", "top_logprobs")
_OWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "reasoning",
        "text",
        "stream",
        "store",
        "previous_response_id",
        "metadata",
        "load_balance_strategy",
        *_PASSED,
        *IGNORED_FIELDS,
    }
)


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise _fail("input must be a string or a list of items", "input")
    return value


# -- inbound: items -> chat messages ------------------------------------------------------------


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or a list of parts", where)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            parts.append({"type": "text", "text": str(part.get("text") or part.get("refusal") or "")})
        elif kind == "input_image":
            url = part.get("image_url") or (f"data:;file_id,{part['file_id']}" if part.get("file_id") else None)
            if not url:
                raise _fail(f"{where}.content[{i}]: input_image needs image_url", where)
            image: dict[str, Any] = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _fail(f"{where}.content[{i}]: part type {kind!r} is not supported by this gateway", where)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _reasoning_fields(item: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    texts = [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
    if not texts:
        texts = [s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict)]
    if texts:
        fields["reasoning_content"] = "".join(texts)
    sealed = item.get("encrypted_content")
    if isinstance(sealed, str) and sealed:
        try:
            blocks = json.loads(base64.b64decode(sealed))
        except ValueError:
            blocks = None
        if isinstance(blocks, list):
            fields["thinking_blocks"] = blocks
    return fields


def _messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    pending: dict[str, Any] = {}  # reasoning waiting for its assistant turn

    def assistant() -> dict[str, Any]:
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and not pending:
            return last
        message: dict[str, Any] = {"role": "assistant", "content": None, **pending}
        pending.clear()
        messages.append(message)
        return message

    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(f"input[{i}] must be an object", "input")
        kind = item.get("type", "message")
        where = f"input[{i}]"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise _fail(f"{where}.role must be user, system, developer or assistant", "input")
            content = _parts(item.get("content"), where)
            if role == "assistant":
                target = assistant()
                if target.get("tool_calls") or target.get("content"):
                    target = {"role": "assistant", "content": None}
                    messages.append(target)
                target["content"] = content
            else:
                messages.append({"role": role, "content": content})
        elif kind == "function_call":
            target = assistant()
            target.setdefault("tool_calls", []).append(
                {
                    "id": item.get("call_id") or item.get("id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
                }
            )
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _parts(output, where)
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            pending.update(_reasoning_fields(item))
        elif kind == "item_reference":
            raise _fail(f"{where}: item_reference is not supported; send the items or previous_response_id", "input")
        else:
            raise _fail(f"{where}: item type {kind!r} is not supported by this gateway", "input")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else tool
            raise _fail(
                f"tools[{i}]: tool type {kind!r} is not supported by this gateway (function tools are)", "tools"
            )
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": str(fmt["type"])}


def chat_request_from_responses(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> ChatRequest:
    """The chat request for a Responses body; ``history`` is the items of ``previous_response_id``
    (its input and output, in order)."""
    unknown = sorted(set(body) - _OWN)
    if unknown:
        raise _fail(f"unknown parameter(s): {', '.join(unknown)}", unknown[0])
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    messages += _messages([*(history or []), *input_items(body)])
    if not any(m["role"] != "system" for m in messages):
        raise _fail("input is required", "input")
    data: dict[str, Any] = {"messages": messages, "model": body.get("model")}
    data.update({k: body[k] for k in _PASSED if body.get(k) is not None})
    if body.get("max_output_tokens") is not None:
        data["max_completion_tokens"] = body["max_output_tokens"]
    if tools := _tools(body.get("tools")):
        data["tools"] = tools
    if body.get("tool_choice") is not None:
        data["tool_choice"] = _tool_choice(body["tool_choice"])
    if (fmt := _response_format(body.get("text"))) is not None:
        data["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        data["reasoning_effort"] = reasoning["effort"]
    if body.get("load_balance_strategy"):
        data["load_balance_strategy"] = body["load_balance_strategy"]
    if body.get("stream"):
        data.update(stream=True, stream_options={"include_usage": True})
    return ChatRequest.model_validate(data)


# -- outbound: chat -> Response -----------------------------------------------------------------


def usage_from_chat(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": usage.get("prompt_tokens", 0),
        "input_tokens_details": {"cached_tokens": prompt.get("cached_tokens") or 0},
        "output_tokens": usage.get("completion_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": completion.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens", 0),
    }


def reasoning_item(item_id: str, text: str, thinking_blocks: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": item_id, "summary": [], "status": "completed"}
    if text:
        item["content"] = [{"type": "reasoning_text", "text": text}]
    if thinking_blocks:
        item["encrypted_content"] = base64.b64encode(json.dumps(thinking_blocks).encode()).decode()
    return item


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": [part]}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def output_items_from_completion(completion: ChatCompletion) -> list[dict[str, Any]]:
    choice = completion.choices[0]
    message = choice.message.model_dump(exclude_none=True)
    out: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or ""
    if reasoning or message.get("thinking_blocks"):
        out.append(reasoning_item("rs_" + uuid.uuid4().hex, reasoning, message.get("thinking_blocks")))
    if message.get("content"):
        out.append(message_item("msg_" + uuid.uuid4().hex, str(message["content"])))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        out.append(
            function_call_item(
                "fc_" + uuid.uuid4().hex, call["id"], function.get("name", ""), function.get("arguments", "")
            )
        )
    return out


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(
    body: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    finish_reason: str | None,
    status: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Response object (the same for the non-streamed reply and ``response.completed``)."""
    incomplete = _INCOMPLETE.get(finish_reason or "")
    if status is None:
        status = "incomplete" if incomplete else "completed"
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    text = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete and status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": (reasoning or {}).get("summary")},
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
