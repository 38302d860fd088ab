"""One Anthropic codec in both directions: a Messages body read by the dialect and written again
by the Claude plugin's encoder comes out as it went in (system blocks, cache_control, images,
tool_use / tool_result, signed and redacted thinking in their order, interleaved thinking)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core.dialects import chat_request_from_messages
from llm_factory_core.providers import reasoning_memory

claude_codec = pytest.importorskip("llm_factory_claude._codec")

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
T1 = {"type": "thinking", "thinking": "First, Paris.", "signature": "c2lnLTE="}
T2 = {"type": "thinking", "thinking": "Then Rome.", "signature": "c2lnLTI="}
REDACTED = {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}
CACHE = {"type": "ephemeral"}


def call(i: str, city: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": i, "name": "get_weather", "input": {"city": city}}


def result(i: str, content: Any, **kw: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": i, "content": content, **kw}


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}, "cache_control": CACHE}


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value}]


CONVERSATIONS = {
    "tools-and-cache": [
        {
            "role": "user",
            "content": [
                IMAGE,
                {"type": "text", "text": "Weather where this is?"},
            ],
        },
        {"role": "assistant", "content": [T1, REDACTED, {"type": "text", "text": "Checking."}, call("t1", "Paris")]},
        {"role": "user", "content": [result("t1", text("18C"), is_error=True, cache_control=CACHE)]},
    ],
    "interleaved": [
        {"role": "user", "content": [{"type": "text", "text": "Paris and Rome?"}]},
        {"role": "assistant", "content": [T1, call("t1", "Paris"), T2, call("t2", "Rome")]},
        {
            "role": "user",
            "content": [result("t1", text("18C")), result("t2", text("25C"))],
        },
    ],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_a_messages_body_survives_the_dialect_and_claude_s_encoder(name: str) -> None:
    reasoning_memory.clear()
    # block boundaries kept (the encoder joins the parts of one system message without a marker)
    system = [
        {"type": "text", "text": "Rules", "cache_control": CACHE},
        {"type": "text", "text": "More"},
        {"type": "text", "text": "Even more"},
    ]
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}, "description": "d", "cache_control": CACHE}]
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = {
        "model": "claude",
        "max_tokens": 4096,
        "system": system,
        "messages": CONVERSATIONS[name],
        "tools": tools,
        "thinking": thinking,
        "top_k": 3,
    }
    chat = chat_request_from_messages(body, native=True).chat
    sent = claude_codec.encode_messages_request(chat, allow_image_urls=True, model="claude-sonnet-4-5-20250929")
    assert sent["messages"] == CONVERSATIONS[name]
    assert sent["system"] == system and sent["thinking"] == thinking and sent["top_k"] == 3
    assert sent["tools"] == tools
    assert sent["max_tokens"] == 4096
