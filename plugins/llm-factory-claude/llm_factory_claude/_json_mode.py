"""OpenAI's ``response_format`` on Claude: a forced tool whose input is the JSON answer.

Claude's Messages API on Bedrock has no JSON mode. Anthropic documents forcing a tool call as the
way to get JSON that follows a schema ("tool use for JSON mode"): the tool's ``input_schema`` is
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

__all__ = ["JSON_TOOL", "JsonMode", "json_mode"]

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
            "response_format together with tools is not supported on Claude (JSON mode is itself a "
            "forced tool call): send one or the other"
        )
    wrapped = schema.get("type") != "object"
    if wrapped:
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    return JsonMode({"name": JSON_TOOL, "description": description, "input_schema": schema}, wrapped)
