"""Thought signatures carried through OpenAI-shaped tool calls.

Gemini's thinking models return an opaque ``thoughtSignature`` on ``functionCall`` parts and
(Gemini 3) reject the next turn with a 400 unless it comes back on that same part. An OpenAI
client has no field for it, so it rides along twice:

* in the tool call id, ``<id>~ts~<signature>``: every OpenAI client sends the id back verbatim,
  and nothing needs to be stored between requests (several server processes, restarts);
* in ``extra_content.google.thought_signature``, the field Gemini's own OpenAI-compatible
  endpoint uses, for clients that keep extra fields.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

__all__ = [
    "SIGNATURE_MARKER",
    "is_generated_id",
    "new_call_id",
    "pack_call_id",
    "signature_of",
    "unpack_call_id",
]

SIGNATURE_MARKER = "~ts~"
"""Never in base64 (standard or url-safe), so the split is unambiguous."""
_GENERATED = re.compile(r"^call_[0-9a-f]{24}$")


def new_call_id() -> str:
    """An id for a function call Gemini returned without one."""
    return "call_" + uuid.uuid4().hex[:24]


def is_generated_id(call_id: str) -> bool:
    """True for ids made by :func:`new_call_id` (they are not sent back to Gemini as ids)."""
    return bool(_GENERATED.match(call_id))


def pack_call_id(call_id: str, signature: str | None) -> str:
    return f"{call_id}{SIGNATURE_MARKER}{signature}" if signature else call_id


def unpack_call_id(packed: str) -> tuple[str, str | None]:
    """``(call id, signature or None)`` from a tool call id made by :func:`pack_call_id`."""
    call_id, marker, signature = packed.partition(SIGNATURE_MARKER)
    return (call_id, signature) if marker and signature else (packed, None)


def signature_of(tool_call: dict[str, Any]) -> str | None:
    """The signature of an OpenAI tool call from a request: the extra field first, then the id."""
    extra = tool_call.get("extra_content")
    if isinstance(extra, dict):
        google = extra.get("google")
        if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
            return str(google["thought_signature"])
    return unpack_call_id(str(tool_call.get("id") or ""))[1]
