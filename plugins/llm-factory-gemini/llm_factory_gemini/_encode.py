"""OpenAI chat request -> Gemini ``generateContent`` body (a pure function).

Gemini has two roles (``user`` and ``model``), a separate ``systemInstruction``, function calls
matched by *name* rather than id, and camelCase field names everywhere. Fields of other
providers in the history (``thinking_blocks``, ``reasoning_content``, ``cache_control``, Claude
``thinking`` parts) have no Gemini meaning and are left out rather than forwarded.
"""

from __future__ import annotations

from typing import Any

from llm_factory_core import ChatRequest
from llm_factory_core.providers import json_loads

from ._errors import EncodeError
from ._media import media_part, tool_result
from ._models import family_of
from ._settings import GeminiSettings
from ._signatures import is_generated_id, signature_of, unpack_call_id
from ._thinking import thinking_config

__all__ = ["EncodeError", "encode_request", "merge_extras"]

_FOREIGN_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning"})
"""Assistant content parts of other providers (Claude's signed thinking): dropped."""
_OPENAI_ONLY = frozenset(
    {"metadata", "store", "service_tier", "modalities", "audio", "prediction", "web_search_options",
     "verbosity", "prompt_cache_key", "safety_identifier", "functions", "function_call"}
)  # fmt: skip
"""OpenAI request fields that may reach us as unknown top-level fields and mean nothing to
Gemini (it rejects unknown names): not merged into the body."""
_OTHER_PROVIDERS = frozenset(
    {"thinking", "enable_thinking", "thinking_budget", "output_config", "anthropic_beta", "cache_control",
     "chat_template_kwargs", "enable_search"}
)  # fmt: skip
"""Other providers' extras a client may send to a model group that mixes providers (Claude's
``thinking``, Qwen's ``enable_thinking``...): meaningless to Gemini and refused by it, so a
fallback to Gemini must not fail on them. ``top_k`` is understood (``generationConfig.topK``)."""


def encode_request(request: ChatRequest, settings: GeminiSettings) -> dict[str, Any]:
    family = family_of(settings.model)
    system, contents = _contents(request.messages, settings, multimodal_tool_results=family.multimodal_tool_results)
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
    extras = request.__pydantic_extra__
    if extras:
        extras = {
            k: v for k, v in extras.items() if v is not None and k not in _OPENAI_ONLY and k not in _OTHER_PROVIDERS
        }
        if "top_k" in extras:
            extras["generationConfig"] = {"topK": extras.pop("top_k"), **(extras.get("generationConfig") or {})}
        merge_extras(body, extras)
    if request.extra_body:
        merge_extras(body, request.extra_body)
    return body


# -- messages -------------------------------------------------------------------------------------


def _contents(
    messages: list[Any], settings: GeminiSettings, *, multimodal_tool_results: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name (Gemini answers by name)
    pending: list[dict[str, Any]] = []  # media from tool results, sent after the function responses

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        # Gemini wants turns to alternate; parallel function responses belong in one content.
        # The parts list is extended in place: linear in the number of messages.
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if pending and role not in ("tool", "function"):
            add("user", pending)
            pending = []
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(content, i))
        elif role == "user":
            add("user", _user_parts(content, i))
        elif role == "assistant":
            parts = [{"text": text} for text in _texts(content, i) if text]
            for n, call in enumerate(message.get("tool_calls") or []):
                parts.append(_function_call_part(call, names, settings, i, first=n == 0))
            add("model", parts)
        elif role in ("tool", "function"):
            call_id = str(message.get("tool_call_id") or "")
            name = names.get(call_id) or message.get("name")
            if not name:
                raise EncodeError(
                    f"messages[{i}]: tool result for unknown tool_call_id {call_id[:40]!r}; Gemini needs "
                    "the function name (send the assistant message with its tool_calls first)"
                )
            result, inner, after = tool_result(content, i, multimodal=multimodal_tool_results)
            response: dict[str, Any] = {"name": name, "response": result}
            native_id = unpack_call_id(call_id)[0]
            if native_id and not is_generated_id(native_id):
                response["id"] = native_id
            if inner:
                response["parts"] = inner
            add("user", [{"functionResponse": response}])
            pending.extend(after)
        else:
            raise EncodeError(f"messages[{i}]: unsupported role {role!r}")
    if pending:
        add("user", pending)
    return system, contents


def _function_call_part(
    call: dict[str, Any], names: dict[str, str], settings: GeminiSettings, i: int, *, first: bool
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
    signature = signature_of(call)
    if signature is None and first:
        # Gemini 3 validates the first function call of each step of the current turn (only the
        # first call of a parallel batch carries a signature). Google documents this value for
        # calls whose signature is unknown; Gemini 2.5 ignores it.
        signature = settings.missing_thought_signature
    if signature:
        part["thoughtSignature"] = signature
    return part


def _texts(content: Any, i: int) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    out = []
    for part in content:
        kind = part.get("type")
        if kind in _FOREIGN_PARTS:
            continue
        if kind in ("text", "input_text", "output_text") or "text" in part:
            out.append(str(part.get("text", "")))
        elif kind == "refusal":
            out.append(str(part.get("refusal", "")))
        else:
            raise EncodeError(f"messages[{i}]: a {kind!r} part is only allowed in user messages")
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
            if isinstance(image, dict):
                parts.append(media_part(str(image.get("url") or ""), i, image.get("format") or image.get("mime_type")))
            else:
                parts.append(media_part(str(image or ""), i))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}})
        elif kind == "file":
            file = part.get("file") or {}
            if not file.get("file_data"):
                raise EncodeError(f"messages[{i}]: file parts need file_data (a data: URL)")
            parts.append(media_part(str(file["file_data"]), i))
        else:
            raise EncodeError(f"messages[{i}]: unsupported content part type {kind!r}")
    return parts


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
    if thinking := thinking_config(request, settings):
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


def merge_extras(body: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge provider extras (``extra_body``, or top-level unknown request fields: what the OpenAI
    SDK's ``extra_body`` becomes through the gateway) into the Gemini body.

    Gemini's own names, camelCase or snake_case (Google reads both; they are stored camelCase so a
    key is never sent twice). Objects merge key by key at any depth (``generationConfig``,
    ``thinkingConfig``); any other value, lists included (``safetySettings``, ``tools``), replaces
    ours. A ``thinkingLevel`` or ``thinkingBudget`` given here replaces the other one computed
    from the request (Gemini refuses both together)."""
    config = extra.get("generationConfig") or extra.get("generation_config")
    thinking = (config.get("thinkingConfig") or config.get("thinking_config")) if isinstance(config, dict) else None
    _deep_merge(body, extra)
    if isinstance(thinking, dict):
        given = {_camel(k) for k in thinking}
        merged = body.get("generationConfig", {}).get("thinkingConfig", {})
        if "thinkingLevel" in given and "thinkingBudget" not in given:
            merged.pop("thinkingBudget", None)
        elif "thinkingBudget" in given and "thinkingLevel" not in given:
            merged.pop("thinkingLevel", None)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


_MESSAGES = frozenset({"generationConfig", "thinkingConfig", "toolConfig", "functionCallingConfig"})
"""Objects whose keys are Gemini field names (camelised when merged); others are free-form."""


def _deep_merge(target: dict[str, Any], extra: dict[str, Any], *, names: bool = True) -> None:
    for key, value in extra.items():
        key = _camel(key) if names else key
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value, names=key in _MESSAGES)
        elif isinstance(value, dict):
            target[key] = {}
            _deep_merge(target[key], value, names=key in _MESSAGES)
        else:
            target[key] = value
