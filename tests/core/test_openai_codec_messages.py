"""The OpenAI codec's message encoding: history tool-call ids over 40 characters get one short
deterministic id on both sides of the call, and (for upstreams that reject them) other providers'
message fields are dropped, without touching the caller's messages and in linear time."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from llm_factory_core import ChatRequest
from llm_factory_core._openai_codec import (
    MAX_TOOL_CALL_ID_LENGTH,
    encode_openai_messages,
    encode_openai_request,
    short_tool_call_id,
)

SIGNATURE = "Cs0BAdHtim" + "x" * 1500
PACKED_ID = f"call_weather~ts~{SIGNATURE}"  # Gemini's old id with the thought signature packed in


def tool_loop(call_id: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_short", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C"},
        {"role": "tool", "tool_call_id": "call_short", "content": "12:00"},
    ]


def test_a_long_id_is_shortened_the_same_way_on_both_sides() -> None:
    messages = tool_loop(PACKED_ID)
    encoded = encode_openai_messages(messages)
    first, second = (c["id"] for c in encoded[1]["tool_calls"])
    assert len(first) <= MAX_TOOL_CALL_ID_LENGTH and first.startswith("call_")
    assert encoded[2]["tool_call_id"] == first
    assert (second, encoded[3]["tool_call_id"]) == ("call_short", "call_short")
    # Deterministic: the next request of the loop maps the same history to the same ids.
    assert encode_openai_messages(tool_loop(PACKED_ID))[1]["tool_calls"][0]["id"] == first
    assert short_tool_call_id(PACKED_ID) == first
    assert short_tool_call_id(PACKED_ID + "y") != first


@pytest.mark.parametrize("length", [40, 41])
def test_the_limit_is_forty_characters(length: int) -> None:
    call_id = "c" * length
    assert (short_tool_call_id(call_id) == call_id) is (length <= 40)
    assert len(short_tool_call_id(call_id)) <= 40


def test_the_callers_messages_are_never_changed() -> None:
    messages = tool_loop(PACKED_ID)
    messages[1]["thinking_blocks"] = [{"type": "thinking", "thinking": "hm", "signature": "sig"}]
    before = copy.deepcopy(messages)
    encode_openai_messages(messages, strip_foreign_fields=True)
    assert messages == before


def test_nothing_to_change_returns_the_same_list() -> None:
    messages = tool_loop("call_short_id")
    assert encode_openai_messages(messages, strip_foreign_fields=True) is messages


def foreign_history() -> list[dict[str, Any]]:
    return [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Let me look.", "signature": "EqQBCkYIBxgCKkD"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"},
            ],
            "reasoning_content": "Let me look.",
            "thinking_blocks": [{"type": "thinking", "thinking": "Let me look.", "signature": "EqQBCkYIBxgCKkD"}],
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                    "extra_content": {"google": {"thought_signature": "c2ln"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C", "name": "get_weather"},
        {"role": "assistant", "content": "18C in Paris.", "reasoning_content": "done", "prefix": False},
    ]


def test_foreign_fields_are_dropped_when_asked() -> None:
    encoded = encode_openai_messages(foreign_history(), strip_foreign_fields=True)
    assert encoded == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,  # only reasoning parts were there: no content, not an empty list
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "18C in Paris."},
    ]


def test_openai_fields_are_kept() -> None:
    messages = [
        {"role": "developer", "content": "Rules.", "name": "ops"},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "Look", "prompt_cache_breakpoint": {"mode": "explicit"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ],
        },
        {"role": "assistant", "content": "No.", "refusal": None, "name": "bot", "audio": {"id": "audio_1"}},
    ]
    assert encode_openai_messages(messages, strip_foreign_fields=True) is messages


def test_without_stripping_foreign_fields_stay_and_ids_are_still_shortened() -> None:
    # DeepSeek / Qwen / vLLM-style upstreams read reasoning_content: the codec's default keeps it.
    messages = foreign_history()
    messages[2]["tool_calls"][0]["id"] = messages[3]["tool_call_id"] = PACKED_ID
    encoded = encode_openai_messages(messages)
    assert encoded[2]["reasoning_content"] == "Let me look." and "thinking_blocks" in encoded[2]
    assert encoded[2]["tool_calls"][0]["id"] == encoded[3]["tool_call_id"] == short_tool_call_id(PACKED_ID)


def test_the_request_encoder_takes_the_switch() -> None:
    request = ChatRequest(messages=foreign_history())
    plain = encode_openai_request(request, "gpt-4o", stream=False)
    stripped = encode_openai_request(request, "gpt-4o", stream=False, strip_foreign_fields=True)
    assert "reasoning_content" in plain["messages"][4]
    assert stripped["messages"][4] == {"role": "assistant", "content": "18C in Paris."}


def test_twenty_thousand_messages_encode_in_linear_time() -> None:
    # Security issue 20: no quadratic work on long histories. Alternating and same-role runs, with
    # long ids and foreign fields to rewrite all along (the slow path).
    messages: list[dict[str, Any]] = []
    for i in range(5_000):
        call_id = f"call_{i}~ts~" + "s" * 60
        messages.append({"role": "user", "content": f"q{i}"})
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "r",
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": "ok"})
        messages.append({"role": "tool" if i % 2 else "user", "tool_call_id": call_id, "content": "ok"})
    assert len(messages) == 20_000
    started = time.perf_counter()
    encoded = encode_openai_messages(messages, strip_foreign_fields=True)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert len(encoded) == len(messages)
    assert all(len(c["id"]) <= 40 for m in encoded for c in m.get("tool_calls", ()))
    assert all("reasoning_content" not in m for m in encoded)
    assert all("tool_call_id" not in m for m in encoded if m["role"] == "user")  # dropped, not restored
    assert encoded[1]["tool_calls"][0]["id"] == encoded[2]["tool_call_id"]
