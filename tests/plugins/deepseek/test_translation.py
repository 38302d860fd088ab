"""Pure translation: the reasoning_content round-trip policy (reference §4.4, findings 2 and 17),
other providers' fields, chat prefix completion, reasoning_effort, the model rule, and usage."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from llm_factory_core import ChatRequest
from llm_factory_core.providers import apply_model_rules, reasoning_memory
from llm_factory_deepseek import DeepSeekProvider, DeepSeekSettings, prepare_messages, thinking_mode
from llm_factory_deepseek._history import EMPTY_REASONING
from llm_factory_deepseek._memory import MEMORY_KIND, recall
from llm_factory_deepseek._prefix import beta_base
from llm_factory_deepseek._provider import apply_reasoning_effort, normalise_usage
from llm_factory_deepseek._rules import DEEPSEEK_RULES

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
    """Never ``null`` (DeepSeek counts it as missing); in a tool stretch in thinking mode it is not
    deleted either (that is the 400 of finding 2) but sent as the empty reasoning; elsewhere it is
    dropped."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "Hi", "reasoning_content": None},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": CALL, "reasoning_content": None},
    ]
    out = prepare_messages(messages, "auto", thinking=True)
    assert out[3]["reasoning_content"] == EMPTY_REASONING == ""
    assert "reasoning_content" not in out[1]
    assert all("reasoning_content" not in m for m in prepare_messages(messages, "auto", thinking=False))
    assert messages[3]["reasoning_content"] is None  # the caller's message is not changed


def _call(call_id: str) -> list[dict[str, Any]]:
    return [{"id": call_id, "type": "function", "function": {"name": "weather", "arguments": "{}"}}]


def test_a_dropped_reasoning_is_restored_from_memory_else_sent_empty() -> None:
    remembered, forgotten = f"call_{uuid.uuid4().hex[:12]}", f"call_{uuid.uuid4().hex[:12]}"
    reasoning_memory.remember(MEMORY_KIND, remembered, "I need the weather tool")
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": _call(remembered)},
        {"role": "tool", "tool_call_id": remembered, "content": "sunny"},
        {"role": "assistant", "content": "", "tool_calls": _call(forgotten)},
        {"role": "tool", "tool_call_id": forgotten, "content": "rain"},
        {"role": "assistant", "content": "Sunny, then rain"},
    ]
    out = prepare_messages(messages, "auto", thinking=True, recall=recall)
    assert [m.get("reasoning_content") for m in out] == [None, "I need the weather tool", None, "", None, ""]
    # Without a memory (or outside thinking mode) nothing is invented beyond the empty reasoning.
    assert prepare_messages(messages, "auto", thinking=True)[1]["reasoning_content"] == ""
    assert all("reasoning_content" not in m for m in messages)


def test_the_callers_reasoning_wins_over_the_memory() -> None:
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    reasoning_memory.remember(MEMORY_KIND, call_id, "remembered")
    base = {"role": "assistant", "content": None, "tool_calls": _call(call_id)}
    sent = {**base, "reasoning_content": "the client's own"}
    history = [{"role": "user", "content": "Q"}, sent, {"role": "tool", "tool_call_id": call_id, "content": "x"}]
    out = prepare_messages(history, "auto", thinking=True, recall=recall)
    assert out[1] is sent, "a message that needs nothing is passed through as it is"
    # An empty string carries nothing: the remembered reasoning is the better one to send.
    emptied = [history[0], {**base, "reasoning_content": ""}, history[2]]
    assert prepare_messages(emptied, "auto", thinking=True, recall=recall)[1]["reasoning_content"] == "remembered"


def test_keep_sends_reasoning_as_given_and_strip_never_restores() -> None:
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "tool_calls": CALL, "reasoning_content": None}]
    assert prepare_messages(messages, "keep", thinking=True)[1]["reasoning_content"] is None
    assert "reasoning_content" not in prepare_messages(messages, "strip", thinking=True)[1]


def test_other_providers_fields_are_not_sent() -> None:
    signed = {"type": "thinking", "thinking": "hmm", "signature": "c2ln"}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [signed, {"type": "text", "text": "Let me look"}],
            "thinking_blocks": [signed],
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_g1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                    "extra_content": {"google": {"thought_signature": "c2ln"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_g1", "content": "sunny", "name": "weather"},
    ]
    out = prepare_messages(messages, "auto", thinking=True)
    assert out[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief"}]}
    assert out[2] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me look"}],
        "tool_calls": [{"id": "call_g1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
        "reasoning_content": "",
    }
    assert out[3] == {"role": "tool", "tool_call_id": "call_g1", "content": "sunny"}
    assert "thinking_blocks" in messages[2], "the caller's message is not changed"
    only_thinking = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": [signed]}]
    assert prepare_messages(only_thinking, "auto", thinking=False)[1] == {"role": "assistant", "content": None}


def test_a_final_prefix_message_gets_no_restored_reasoning() -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": CALL, "reasoning_content": "tool"},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": "It is sun", "prefix": True},
    ]
    out = prepare_messages(messages, "auto", thinking=True, prefix_index=3)
    assert out[3] == {"role": "assistant", "content": "It is sun", "prefix": True}
    assert out[1]["reasoning_content"] == "tool"


@pytest.mark.parametrize(
    ("base", "beta"),
    [
        ("https://api.deepseek.com", "https://api.deepseek.com/beta"),
        ("https://api.deepseek.com/v1/", "https://api.deepseek.com/beta"),
        ("https://api.deepseek.com/beta", "https://api.deepseek.com/beta"),
        ("http://127.0.0.1:8000/proxy", "http://127.0.0.1:8000/proxy/beta"),
    ],
)
def test_the_beta_base_for_prefix_completion(base: str, beta: str) -> None:
    assert beta_base(base) == beta


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "deepseek-flash", "reasoning_effort": "none"}, {"thinking": {"type": "disabled"}}),
        (
            {"model": "deepseek-flash", "reasoning_effort": "none", "thinking": {"type": "enabled"}},
            {"thinking": {"type": "enabled"}},
        ),
        (
            {"model": "deepseek-chat", "reasoning_effort": "high"},
            {"reasoning_effort": "high", "thinking": {"type": "enabled"}},
        ),
        ({"model": "deepseek-v4-pro", "reasoning_effort": "xhigh"}, {"reasoning_effort": "xhigh"}),
        ({"model": "deepseek-v4-pro"}, {}),
    ],
)
def test_reasoning_effort_becomes_the_thinking_toggle(params: dict[str, Any], expected: dict[str, Any]) -> None:
    body = dict(params)
    apply_reasoning_effort(body)
    assert body == {"model": params["model"], **expected}


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ({"max_completion_tokens": 300}, {"max_tokens": 300}),
        ({"max_completion_tokens": 300, "max_tokens": 50}, {"max_tokens": 300}),
        ({"max_tokens": 50}, {"max_tokens": 50}),
    ],
)
def test_max_completion_tokens_becomes_max_tokens(given: dict[str, Any], sent: dict[str, int]) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "Hi"}], **given)
    adapted = apply_model_rules(request, DEEPSEEK_RULES, "adapt", provider="deepseek", deployment="d")
    assert (adapted.max_tokens, adapted.max_completion_tokens) == (sent["max_tokens"], None)
    assert request.max_completion_tokens == given.get("max_completion_tokens"), "the caller's request is unchanged"


def test_a_twenty_thousand_message_conversation_encodes_in_linear_time() -> None:
    """Security issue 20: the whole body encoding (foreign fields, reasoning restoration, tool
    stretches) stays linear: alternating turns, same-role runs, a tool loop every 40 messages,
    every one of which needs its reasoning restored."""
    settings = DeepSeekSettings(model="deepseek-v4-pro", api_key="sk-deepseek-linear-0001")
    provider = DeepSeekProvider(settings, client=httpx.AsyncClient(), name="deepseek/linear")
    messages: list[dict[str, Any]] = []
    while len(messages) < 20_000:
        i = len(messages)
        if i % 40 == 20:
            call_id = f"call_lin_{i}"
            messages += [
                {"role": "assistant", "content": None, "thinking_blocks": [], "tool_calls": _call(call_id)},
                {"role": "tool", "tool_call_id": call_id, "content": "ok"},
            ]
        else:
            role = "user" if (i // 3) % 2 == 0 else "assistant"  # runs of three same-role messages
            messages.append({"role": role, "content": f"m{i}", "reasoning_content": "r"})
    request = ChatRequest(messages=messages[:20_000])
    started = time.perf_counter()
    body = provider.build_body(request, stream=False)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{elapsed:.2f}s for 20,000 messages"
    sent = body["messages"]
    assert len(sent) == 20_000
    calls = [m for m in sent if m.get("tool_calls")]
    assert len(calls) == 500 and all(m["reasoning_content"] == "" and "thinking_blocks" not in m for m in calls)
    assert sent[0] == {"role": "user", "content": "m0"}, "user messages carry no reasoning_content"
    plain = [m for m in sent[:20] if m["role"] == "assistant"]  # before the first tool loop
    assert plain and all("reasoning_content" not in m for m in plain)


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
