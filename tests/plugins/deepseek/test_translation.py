"""Pure translation: the reasoning_content round-trip policy (reference §4.4) and usage."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_deepseek import prepare_messages, thinking_mode
from llm_factory_deepseek._provider import normalise_usage

CALL = [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]

# Turn 1: plain answer. Turn 2: a tool call, its result and the answer. Turn 3: the new question.
CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello", "reasoning_content": "greet back"},
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": None, "reasoning_content": "need the tool", "tool_calls": CALL},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "assistant", "content": "Sunny", "reasoning_content": "tool said sunny"},
    {"role": "user", "content": "Thanks"},
]


def _reasoning(messages: list[dict[str, Any]]) -> list[str | None]:
    return [m.get("reasoning_content") for m in messages]


def test_auto_keeps_reasoning_only_in_stretches_with_tool_calls() -> None:
    out = prepare_messages(CONVERSATION, "auto", thinking=True)
    assert _reasoning(out) == [None, None, None, "need the tool", None, "tool said sunny", None]
    assert "reasoning_content" not in out[1]
    assert out[3]["tool_calls"] == CALL and out[1]["content"] == "Hello"


def test_auto_keeps_the_open_tool_loop_of_the_current_turn() -> None:
    out = prepare_messages(CONVERSATION[2:5], "auto", thinking=True)
    assert _reasoning(out) == [None, "need the tool", None]


def test_auto_strips_everything_outside_thinking_mode() -> None:
    out = prepare_messages(CONVERSATION, "auto", thinking=False)
    assert all("reasoning_content" not in m for m in out)


def test_strip_and_keep() -> None:
    assert all("reasoning_content" not in m for m in prepare_messages(CONVERSATION, "strip", thinking=True))
    assert prepare_messages(CONVERSATION, "keep", thinking=False) == CONVERSATION


def test_the_callers_messages_are_not_modified() -> None:
    before = [dict(m) for m in CONVERSATION]
    prepare_messages(CONVERSATION, "strip", thinking=True)
    assert before == CONVERSATION


def test_a_null_reasoning_is_never_sent() -> None:
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "tool_calls": CALL, "reasoning_content": None}]
    assert "reasoning_content" not in prepare_messages(messages, "auto", thinking=True)[1]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "deepseek-reasoner"}, True),
        ({"model": "deepseek-chat"}, False),
        ({"model": "deepseek-v4-pro"}, True),  # V4 models think by default
        ({"model": "deepseek-chat", "thinking": {"type": "enabled"}}, True),
        ({"model": "deepseek-v4-flash", "thinking": {"type": "disabled"}}, False),
    ],
)
def test_thinking_mode(body: dict[str, Any], expected: bool) -> None:
    assert thinking_mode(body) is expected


@pytest.mark.parametrize(
    ("usage", "cached"),
    [
        ({"prompt_tokens": 9, "prompt_cache_hit_tokens": 4, "prompt_cache_miss_tokens": 5}, 4),
        ({"prompt_tokens": 9, "prompt_cache_hit_tokens": 4, "prompt_tokens_details": {"cached_tokens": 3}}, 3),
    ],
)
def test_cache_hits_show_as_openai_cached_tokens(usage: dict[str, Any], cached: int) -> None:
    normalise_usage(usage)
    assert usage["prompt_tokens_details"]["cached_tokens"] == cached
    assert usage["prompt_cache_hit_tokens"] == 4


def test_usage_without_deepseek_fields_is_left_alone() -> None:
    usage = {"prompt_tokens": 9}
    normalise_usage(usage)
    normalise_usage(None)
    assert usage == {"prompt_tokens": 9}
