"""OpenAI's ``response_format`` on Claude: native structured output, or a forced tool whose input
is the JSON answer.

Models with structured outputs (``_models.ModelInfo.native_json``) take a json_schema as
``output_config.format`` (``native_format``): it works together with tools and thinking. Older
models, ``json_object`` (no schema to give) and non-object schemas use the emulation: Anthropic
documents forcing a tool call as the way to get JSON that follows a schema ("tool use for JSON
mode"): the tool's ``input_schema`` is
the requested schema and ``tool_choice`` names it. The tool call's input comes back as the reply
text, streamed as it arrives, with finish reason ``stop``, which is what OpenAI returns.
Claude's tool schemas must describe an object, so any other schema (an array, a string) is
wrapped in ``{"value": ...}`` and unwrapped again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llm_factory_core import ChatRequest

__all__ = ["JSON_TOOL", "JsonMode", "JsonModeError", "json_mode", "native_format"]

JSON_TOOL = "json_response"
"""The forced tool's name; a reply's tool call of that name is the JSON answer."""


class JsonModeError(ValueError):
    """A ``response_format`` Claude cannot honour; the message says what to change."""


@dataclass(frozen=True, slots=True)
class JsonMode:
    tool: dict[str, Any]
    """The tool definition sent to Claude."""
    wrapped: bool
    """The schema is not an object: the answer travels as ``{"value": answer}``."""

    def text(self, tool_input: Any) -> str:
        """The reply text for the tool call's input."""
        if self.wrapped and isinstance(tool_input, dict):
            tool_input = tool_input.get("value")
        return json.dumps(tool_input if tool_input is not None else {}, ensure_ascii=False)


def json_mode(request: ChatRequest) -> JsonMode | None:
    """The forced tool for ``request.response_format``; None for plain text."""
    response_format = request.response_format
    kind = response_format.get("type") if response_format else None
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        schema: Any = {"type": "object"}
        description = "Give the answer as a JSON object."
    elif kind == "json_schema":
        spec = (response_format or {}).get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise JsonModeError("response_format.json_schema.schema must be a JSON Schema object")
        description = str(spec.get("description") or "") if isinstance(spec, dict) else ""
        description = description or "Give the answer as JSON that follows this schema."
    else:
        raise JsonModeError(f"response_format type {kind!r} is not supported: use text, json_object or json_schema")
    if request.tools:
        raise JsonModeError(
            "response_format together with tools needs Claude's structured outputs (a json_schema "
            "with an object schema, on Sonnet 4.5+, Haiku 4.5 or Opus 4.5+); on this model JSON mode "
            "is itself a forced tool call: send one or the other"
        )
    wrapped = schema.get("type") != "object"
    if wrapped:
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    return JsonMode({"name": JSON_TOOL, "description": description, "input_schema": schema}, wrapped)


def native_format(request: ChatRequest) -> dict[str, Any] | None:
    """``output_config.format`` for a json_schema ``response_format`` whose schema is an object
    (anthropic-sdk-python ``types/json_output_format_param.py``); None otherwise."""
    response_format = request.response_format
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    return {"type": "json_schema", "schema": schema}
