"""Thought signatures carried through OpenAI-shaped tool calls.

Gemini's thinking models return an opaque ``thoughtSignature`` on ``functionCall`` parts, and
Gemini 3 rejects the next request (400) unless it comes back on that same part
(https://ai.google.dev/gemini-api/docs/thought-signatures). In the OpenAI shape it travels:

* in ``tool_calls[].extra_content.google.thought_signature``: the field Google's own
  OpenAI-compatible endpoint uses (https://ai.google.dev/gemini-api/docs/openai, "Thought
  signatures"), which clients that keep whole messages send back;
* and in the process's ``reasoning_memory`` under the tool call id, for clients that rebuild
  messages from known fields only (the id always survives).

Tool call ids stay short (``call_<24 hex>``): OpenAI and Azure reject history ids longer than 40
characters, so a conversation can move between providers. Ids packed by earlier releases
(``<id>~ts~<signature>``) still decode.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from llm_factory_core.providers import reasoning_memory

__all__ = [
    "MEMORY_KIND",
    "SIGNATURE_MARKER",
    "extra_content",
    "is_generated_id",
    "new_call_id",
    "remember",
    "signature_of",
    "unpack_call_id",
]

MEMORY_KIND = "gemini.signature"
SIGNATURE_MARKER = "~ts~"
"""Separator of ids packed by earlier releases; never in base64, so the split is unambiguous."""
_GENERATED = re.compile(r"^call_[0-9a-f]{24}$")


def new_call_id() -> str:
    """An id for a function call Gemini returned without one (29 characters)."""
    return "call_" + uuid.uuid4().hex[:24]


def is_generated_id(call_id: str) -> bool:
    """True for ids made by :func:`new_call_id` (they are not sent back to Gemini as ids)."""
    return bool(_GENERATED.match(call_id))


def unpack_call_id(packed: str) -> tuple[str, str | None]:
    """``(call id, signature or None)``: old packed ids give their signature back."""
    call_id, marker, signature = packed.partition(SIGNATURE_MARKER)
    return (call_id, signature) if marker and signature else (packed, None)


def extra_content(signature: str) -> dict[str, Any]:
    return {"google": {"thought_signature": signature}}


def remember(call_id: str, signature: str | None) -> None:
    if signature:
        reasoning_memory.remember(MEMORY_KIND, call_id, signature)


def signature_of(tool_call: dict[str, Any]) -> str | None:
    """The signature of an OpenAI tool call from a request's history: ``extra_content`` first,
    then what this process remembers for its id, then an old packed id; None when unknown."""
    extra = tool_call.get("extra_content")
    if isinstance(extra, dict):
        google = extra.get("google")
        if isinstance(google, dict):
            value = google.get("thought_signature")
            if isinstance(value, str) and value:
                return value
    call_id = str(tool_call.get("id") or "")
    if not call_id:
        return None
    remembered = reasoning_memory.recall(MEMORY_KIND, call_id)
    if isinstance(remembered, str):
        return remembered
    return unpack_call_id(call_id)[1]
