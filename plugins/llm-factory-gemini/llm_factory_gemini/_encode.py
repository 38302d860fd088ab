"""OpenAI chat request -> Gemini ``generateContent`` body (a pure function).

Gemini has two roles (``user`` and ``model``), a separate ``systemInstruction``, function calls
matched by *name* rather than id, and camelCase field names everywhere.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from llm_factory_core import ChatRequest
from llm_factory_core.providers import json_loads

from ._settings import GeminiSettings, thinking_config
from ._signatures import is_generated_id, signature_of, unpack_call_id

__all__ = ["EncodeError", "encode_request"]

_REASONING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
"""``reasoning_effort`` -> ``thinkingBudget``, as Google's own OpenAI-compatible endpoint maps it."""


class EncodeError(ValueError):
    """The request cannot be expressed for Gemini (the provider reports it as a bad request)."""


def encode_request(request: ChatRequest, settings: GeminiSettings) -> dict[str, Any]:
    system, contents = _contents(request.messages, settings)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if config := _generation_config(request, settings):
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = _tools(request.tools)
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _tool_choice(request.tool_choice)}
    if settings.safety_settings:
        body["safetySettings"] = [dict(s) for s in settings.safety_settings]
    if request.extra_body:
        _deep_merge(body, request.extra_body)
    return body


# -- messages -------------------------------------------------------------------------------------


def _contents(messages: list[Any], settings: GeminiSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name (Gemini answers by name)

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        # Gemini wants turns to alternate; parallel function responses belong in one content.
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(content, i))
        elif role == "user":
            add("user", _user_parts(content, i))
        elif role == "assistant":
            parts = [{"text": text} for text in _texts(content, i) if text]
            for call in message.get("tool_calls") or []:
                parts.append(_function_call_part(call, names, settings, i))
            add("model", parts)
        elif role in ("tool", "function"):
            call_id = str(message.get("tool_call_id") or "")
            name = names.get(call_id) or message.get("name")
            if not name:
                raise EncodeError(
                    f"messages[{i}]: tool result for unknown tool_call_id {call_id[:40]!r}; Gemini needs "
                    "the function name (send the assistant message with its tool_calls first)"
                )
            response: dict[str, Any] = {"name": name, "response": _tool_result(content)}
            native_id = unpack_call_id(call_id)[0]
            if native_id and not is_generated_id(native_id):
                response["id"] = native_id
            add("user", [{"functionResponse": response}])
        else:
            raise EncodeError(f"messages[{i}]: unsupported role {role!r}")
    return system, contents


def _function_call_part(
    call: dict[str, Any], names: dict[str, str], settings: GeminiSettings, i: int
) -> dict[str, Any]:
    function = call.get("function") or {}
    name = function.get("name")
    if not name:
        raise EncodeError(f"messages[{i}]: a tool call has no function name")
    raw = function.get("arguments") or "{}"
    try:
        args = json_loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise EncodeError(f"messages[{i}]: tool call arguments of {name!r} are not valid JSON") from None
    packed = str(call.get("id") or "")
    names[packed] = name
    native_id = unpack_call_id(packed)[0]
    names.setdefault(native_id, name)
    function_call: dict[str, Any] = {
        "name": name,
        "args": args if isinstance(args, dict) else {"value": args},
    }
    if native_id and not is_generated_id(native_id):
        function_call["id"] = native_id
    part: dict[str, Any] = {"functionCall": function_call}
    signature = signature_of(call) or settings.missing_thought_signature
    if signature:
        part["thoughtSignature"] = signature
    return part


def _tool_result(content: Any) -> dict[str, Any]:
    """Gemini wants an object; a JSON object result is passed as is, anything else is wrapped."""
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if isinstance(content, str):
        try:
            value = json_loads(content)
        except ValueError:
            return {"result": content}
        return value if isinstance(value, dict) else {"result": value}
    return {"result": content}


def _texts(content: Any, i: int) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    out = []
    for part in content:
        if part.get("type") in ("text", "input_text", "output_text") or "text" in part:
            out.append(str(part.get("text", "")))
        elif part.get("type") == "refusal":
            out.append(str(part.get("refusal", "")))
        else:
            raise EncodeError(f"messages[{i}]: a {part.get('type')!r} part is only allowed in user messages")
    return out


def _user_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_media(str(url or ""), i))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}})
        elif kind == "file":
            file = part.get("file") or {}
            if not file.get("file_data"):
                raise EncodeError(f"messages[{i}]: file parts need file_data (a data: URL)")
            parts.append(_media(str(file["file_data"]), i))
        else:
            raise EncodeError(f"messages[{i}]: unsupported content part type {kind!r}")
    return parts


def _media(url: str, i: int) -> dict[str, Any]:
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma or not header.endswith(";base64"):
            raise EncodeError(f"messages[{i}]: a data: URL must be base64 (data:<mime>;base64,...)")
        return {"inlineData": {"mimeType": header[: -len(";base64")] or "application/octet-stream", "data": data}}
    if url.startswith(("https://", "http://", "gs://")):
        # Gemini reads files it knows (File API, gs:// on Vertex, YouTube); it needs a MIME type.
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise EncodeError(f"messages[{i}]: unsupported image URL (use a data: URL or an https:// file URI)")


# -- settings, tools ------------------------------------------------------------------------------


def _generation_config(request: ChatRequest, settings: GeminiSettings) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_output_tokens is not None:
        config["maxOutputTokens"] = request.max_output_tokens
    if request.stop is not None:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.n is not None:
        config["candidateCount"] = request.n
    if request.seed is not None:
        config["seed"] = request.seed
    if request.presence_penalty is not None:
        config["presencePenalty"] = request.presence_penalty
    if request.frequency_penalty is not None:
        config["frequencyPenalty"] = request.frequency_penalty
    config.update(_response_format(request.response_format))
    thinking = thinking_config(settings)
    if request.reasoning_effort is not None and "thinkingBudget" not in thinking:
        effort = request.reasoning_effort.lower()
        if effort not in _REASONING_BUDGETS:
            raise EncodeError(f"reasoning_effort must be one of {', '.join(_REASONING_BUDGETS)}")
        thinking["thinkingBudget"] = _REASONING_BUDGETS[effort]
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _response_format(response_format: dict[str, Any] | None) -> dict[str, Any]:
    kind = (response_format or {}).get("type")
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        assert response_format is not None
        schema = (response_format.get("json_schema") or {}).get("schema")
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            out["responseJsonSchema"] = schema
        return out
    raise EncodeError(f"unsupported response_format type {kind!r}")


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    native = []
    for tool in tools:
        if tool.get("type") == "function":
            function = tool.get("function") or {}
            declaration: dict[str, Any] = {"name": function.get("name")}
            if function.get("description"):
                declaration["description"] = function["description"]
            if function.get("parameters") is not None:
                # Full JSON Schema: the OpenAPI-subset ``parameters`` rejects many real schemas.
                declaration["parametersJsonSchema"] = function["parameters"]
            declarations.append(declaration)
        elif "type" not in tool:
            native.append(tool)  # a Gemini tool as is: {"googleSearch": {}}, {"codeExecution": {}}
        else:
            raise EncodeError(f"unsupported tool type {tool.get('type')!r}")
    return ([{"functionDeclarations": declarations}] if declarations else []) + native


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise EncodeError("tool_choice must name a function")
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if choice not in modes:
        raise EncodeError(f"tool_choice must be auto, none, required or a function, got {choice!r}")
    return {"mode": modes[choice]}


def _deep_merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra_body`` holds Gemini fields (camelCase); nested objects merge, other values replace."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value
