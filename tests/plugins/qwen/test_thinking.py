"""``reasoning_effort`` -> ``enable_thinking`` / ``thinking_budget``, when a non-streaming call
goes upstream as a stream, and the tool_choice model rules (pure functions, no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import BadRequestError, ChatRequest
from llm_factory_core.providers import apply_model_rules
from llm_factory_qwen import QwenProvider
from llm_factory_qwen._thinking import REASONING_BUDGETS, plan_thinking, thinking_on

HI = [{"role": "user", "content": "Hi"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": HI, **fields})


@pytest.mark.parametrize(
    ("effort", "params"),
    [
        ("none", {"enable_thinking": False}),
        ("minimal", {"enable_thinking": False}),
        ("low", {"enable_thinking": True, "thinking_budget": 4096}),
        ("medium", {"enable_thinking": True, "thinking_budget": 16384}),
        ("high", {"enable_thinking": True, "thinking_budget": 32768}),
        ("xhigh", {"enable_thinking": True}),  # the model's own maximum
        ("max", {"enable_thinking": True}),
    ],
)
@pytest.mark.parametrize("model", ["qwen-plus", "qwen3-max-2026-01-23", "qwen3.5-plus", "qwen3-32b"])
def test_reasoning_effort_becomes_enable_thinking_and_a_budget(model: str, effort: str, params: Any) -> None:
    assert plan_thinking(request(reasoning_effort=effort), model, stream=True).params == params


def test_every_budget_fits_the_smallest_thinking_model() -> None:
    # 38,912 tokens: open-source Qwen3 and qwen-plus's maximum chain of thought (Model Studio docs)
    assert all(b is None or 0 < b <= 38912 for b in REASONING_BUDGETS.values())


@pytest.mark.parametrize("where", ["top", "extra_body", "parameters"])
def test_the_callers_own_enable_thinking_and_budget_win(where: str) -> None:
    own = {"enable_thinking": False, "thinking_budget": 100}
    fields: dict[str, Any] = {"reasoning_effort": "high"}
    if where == "top":
        fields.update(own)
    elif where == "extra_body":
        fields["extra_body"] = own
    else:
        fields["extra_body"] = {"parameters": own}
    assert plan_thinking(request(**fields), "qwen-plus", stream=True).params == {}
    budget_only = {**fields, "extra_body": {"thinking_budget": 100}} if where != "top" else {}
    if budget_only:
        plan = plan_thinking(request(**budget_only), "qwen-plus", stream=True)
        assert plan.params == {"enable_thinking": True}, "the caller's budget is not overridden"


@pytest.mark.parametrize(
    ("model", "effort", "params"),
    [
        ("qwq-plus", "high", {}),  # thinking-only, and QwQ takes no budget
        ("qwq-plus", "none", {}),  # cannot be turned off: not sent
        ("qvq-max", "low", {}),
        ("qwen3-235b-a22b-thinking-2507", "low", {"thinking_budget": 4096}),
        ("qwen3-235b-a22b-thinking-2507", "none", {}),
        ("qwen-max", "high", {}),  # no thinking mode at all
        ("qwen3-235b-a22b-instruct-2507", "high", {}),
        ("qwen2.5-72b-instruct", "none", {}),
    ],
)
def test_models_without_a_switch_get_no_switch(model: str, effort: str, params: Any) -> None:
    assert plan_thinking(request(reasoning_effort=effort), model, stream=True).params == params


@pytest.mark.parametrize(
    ("model", "fields", "stream_upstream", "params"),
    [
        # open-source hybrids think by default and refuse non-streaming thinking
        ("qwen3-32b", {}, False, {"enable_thinking": False}),
        ("qwen3-235b-a22b", {}, False, {"enable_thinking": False}),
        ("qwen3-32b", {"reasoning_effort": "high"}, True, {"enable_thinking": True, "thinking_budget": 32768}),
        ("qwen3-32b", {"extra_body": {"enable_thinking": True}}, True, {}),
        ("qwen3-32b", {"enable_thinking": True}, True, {}),  # top level: the gateway's extra_body
        ("qwen3-32b", {"reasoning_effort": "none"}, False, {"enable_thinking": False}),
        ("qwen3.5-plus", {}, False, {"enable_thinking": False}),
        # stream-only models
        ("qwq-plus", {}, True, {}),
        ("qvq-max", {}, True, {}),
        ("qwen3-omni-flash", {}, True, {}),
        ("qwen-omni-turbo", {}, True, {}),
        ("qwen3-30b-a3b-thinking-2507", {}, True, {}),
        # commercial hybrids: off by default, streamed only when asked to think
        ("qwen-plus", {}, False, {}),
        ("qwen-plus", {"reasoning_effort": "low"}, True, {"enable_thinking": True, "thinking_budget": 4096}),
        ("qwen-plus", {"extra_body": {"enable_thinking": False}}, False, {}),
        ("qwen-max", {"reasoning_effort": "high"}, False, {}),
        ("qwen-turbo", {}, False, {}),
    ],
)
def test_non_streaming_calls(model: str, fields: Any, stream_upstream: bool, params: Any) -> None:
    plan = plan_thinking(request(**fields), model, stream=False)
    assert (plan.stream_upstream, plan.params) == (stream_upstream, params)


def test_streaming_calls_keep_the_models_default() -> None:
    assert plan_thinking(request(), "qwen3-32b", stream=True).params == {}
    assert plan_thinking(request(), "qwen3.5-plus", stream=True).params == {}
    assert thinking_on(request(stream=True), "qwen3.5-plus")
    assert not thinking_on(request(stream=False), "qwen3.5-plus"), "non-stream: sent with enable_thinking false"
    assert thinking_on(request(stream=False, reasoning_effort="low"), "qwen3.5-plus")
    assert not thinking_on(request(stream=True), "qwen-plus")
    assert thinking_on(request(stream=True, enable_thinking=True), "qwen-plus")
    assert thinking_on(request(stream=True, extra_body={"enable_thinking": False}), "qwq-plus"), "always thinks"


# -- model rules --------------------------------------------------------------------------------


def adapted(model: str, policy: Any = "adapt", **fields: Any) -> ChatRequest:
    rules = tuple(r for r in QwenProvider.model_rules if r.matches(model))
    return apply_model_rules(request(**fields), rules, policy, provider="qwen", deployment="d")


@pytest.mark.parametrize("model", ["qwen-turbo", "qwen-max", "qwen3-32b", "qwen3.5-plus", "qwq-plus"])
@pytest.mark.parametrize("stream", [False, True])
def test_required_becomes_auto_on_every_model(model: str, stream: bool) -> None:
    assert adapted(model, tool_choice="required", stream=stream).tool_choice == "auto"


@pytest.mark.parametrize(
    ("model", "fields", "kept"),
    [
        ("qwen-plus", {"stream": True}, True),  # thinking off by default
        ("qwen-plus", {"stream": True, "enable_thinking": True}, False),
        ("qwen-plus", {"stream": False, "reasoning_effort": "high"}, False),
        ("qwen-plus", {"stream": True, "reasoning_effort": "none"}, True),
        ("qwen3.5-plus", {"stream": True}, False),  # thinks by default
        ("qwen3.5-plus", {"stream": False}, True),  # non-stream: sent with enable_thinking false
        ("qwen3.5-plus", {"stream": True, "extra_body": {"enable_thinking": False}}, True),
        ("qwen3-32b", {"stream": True}, False),
        ("qwen3-32b", {"stream": False}, True),
        ("qwq-plus", {"stream": True}, False),  # always thinks
        ("qwen3-235b-a22b-thinking-2507", {"stream": False}, False),
        ("qwen-max", {"stream": True}, True),  # no thinking mode
    ],
)
def test_a_named_choice_is_dropped_in_thinking_mode(model: str, fields: Any, kept: bool) -> None:
    result = adapted(model, tool_choice=NAMED, **fields)
    assert result.tool_choice == (NAMED if kept else None)


def test_the_fail_policy_names_the_rule_and_its_source() -> None:
    with pytest.raises(BadRequestError, match=r"required.*qwen\.tool_choice_required.*alibabacloud") as info:
        adapted("qwen-turbo", "fail", tool_choice="required")
    assert info.value.param == "tool_choice" and info.value.status == 400
    with pytest.raises(BadRequestError, match="thinking mode"):
        adapted("qwen3.5-plus", "fail", tool_choice=NAMED, stream=True)


def test_rules_never_change_the_callers_request() -> None:
    original = request(tool_choice="required", stream=True)
    rules = QwenProvider.model_rules
    assert apply_model_rules(original, rules, "adapt", provider="qwen", deployment="d").tool_choice == "auto"
    assert original.tool_choice == "required"
    assert all(rule.source for rule in rules)
