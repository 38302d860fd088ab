"""Keeping only the message fields an upstream defines: one routine, each API's field table as data.

A history may carry other providers' fields (Claude's ``thinking_blocks``, Gemini's
``tool_calls[].extra_content``, Anthropic-style ``cache_control``, a streamed ``index``, raw
``thinking`` content parts); an API that validates its input refuses them. ``MessageFields`` lists
what one API accepts per role, per content part and in a tool call, and ``keep`` copies a message
down to that. The caller's dicts are never changed (failover shares them); a message with nothing
foreign comes back as itself (the common case, no copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FOREIGN_PART_TYPES", "MessageFields"]

FOREIGN_PART_TYPES = frozenset({"thinking", "redacted_thinking", "reasoning"})
"""Reasoning parts some clients put in assistant content (Claude's raw blocks): the state they
carry belongs to another provider, and no OpenAI-style API takes them as input."""


@dataclass(frozen=True)
class MessageFields:
    """What an API accepts in a message. Roles, part types not listed pass unchanged."""

    roles: Mapping[str, frozenset[str]]
    parts: Mapping[str, frozenset[str]]
    tool_call: frozenset[str]
    function: frozenset[str] | None = None
    """The keys of ``tool_calls[].function``, when the API checks them too."""

    def keep(self, message: Any) -> Any:
        """``message`` with only the fields this API defines (itself when it has no others)."""
        if not isinstance(message, dict):
            return message
        role = message.get("role")
        allowed = self.roles.get(role) if isinstance(role, str) else None
        if allowed is None:
            return message
        result = message if allowed.issuperset(message) else {k: v for k, v in message.items() if k in allowed}
        content = result.get("content")
        if isinstance(content, list):
            parts = self._parts(content)
            if parts is not content:
                result = result if result is not message else dict(message)
                # Only foreign reasoning parts: an empty list is refused, no content is not.
                result["content"] = parts or (None if role == "assistant" else "")
        calls = result.get("tool_calls")  # from ``result``: never restore a field just dropped
        if isinstance(calls, list) and calls:
            fixed = self._calls(calls)
            if fixed is not calls:
                result = result if result is not message else dict(message)
                result["tool_calls"] = fixed
        return result

    def _calls(self, calls: list[Any]) -> list[Any]:
        out: list[Any] | None = None
        for i, call in enumerate(calls):
            fixed = call
            if isinstance(call, dict):
                if not self.tool_call.issuperset(call):
                    fixed = {k: v for k, v in call.items() if k in self.tool_call}
                function = call.get("function")
                keys = self.function
                if keys is not None and isinstance(function, dict) and not keys.issuperset(function):
                    fixed = fixed if fixed is not call else dict(call)
                    fixed["function"] = {k: v for k, v in function.items() if k in keys}
            if fixed is not call and out is None:
                out = list(calls[:i])
            if out is not None:
                out.append(fixed)
        return calls if out is None else out

    def _parts(self, parts: list[Any]) -> list[Any]:
        out: list[Any] | None = None
        for i, part in enumerate(parts):
            fixed: Any = part
            if isinstance(part, dict):
                kind = part.get("type")
                if kind in FOREIGN_PART_TYPES:
                    fixed = None
                else:
                    allowed = self.parts.get(kind) if isinstance(kind, str) else None
                    if allowed is not None and not allowed.issuperset(part):
                        fixed = {k: v for k, v in part.items() if k in allowed}
            if fixed is not part and out is None:
                out = list(parts[:i])
            if out is not None and fixed is not None:
                out.append(fixed)
        return parts if out is None else out
