"""Thinking controls, model rules and provider extras through ``LLMFactory``, over real sockets on
each transport, against a fake that rejects what today's models reject."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import AllDeploymentsFailedError, BadRequestError

from .fake_gemini import Turn
from .helpers import Env

pytestmark = pytest.mark.anyio


def thinking(env: Env) -> dict[str, Any]:
    return dict(env.fake.requests[-1].body.get("generationConfig", {}).get("thinkingConfig", {}))


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [
        # Gemini 3 and later: a level, adapted to the levels the model has.
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "MINIMAL"}),
        ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "MINIMAL"}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "MEDIUM"}),
        ("gemini-3-flash-preview", "xhigh", {"thinkingLevel": "HIGH"}),
        ("gemini-3-pro-preview", "none", {"thinkingLevel": "LOW"}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "HIGH"}),
        ("gemini-3.1-pro-preview", "minimal", {"thinkingLevel": "LOW"}),
        ("gemini-3.1-pro-preview", "medium", {"thinkingLevel": "MEDIUM"}),
        ("gemini-3.1-pro-preview", "max", {"thinkingLevel": "HIGH"}),
        ("gemini-3.5-flash", "low", {"thinkingLevel": "LOW"}),
        ("gemini-3.7-flash", "none", {"thinkingLevel": "LOW"}),
        ("gemini-flash-latest", "high", {"thinkingLevel": "HIGH"}),
        # Gemini 2.5: a budget in the model's range; Pro cannot turn thinking off.
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}),
        ("gemini-2.5-flash", "max", {"thinkingBudget": 24576}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini-2.5-pro", "xhigh", {"thinkingBudget": 32768}),
        ("gemini-2.5-flash-lite", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash-lite", "medium", {"thinkingBudget": 8192}),
    ],
)
async def test_reasoning_effort_becomes_the_models_own_control(
    env: Env, model: str, effort: str, expected: dict[str, Any]
) -> None:
    async with env.factory(env.config(model=model)) as f:
        result = await f.chat_async("Think", reasoning_effort=effort)
    assert result.choices[0].message.content == "Hello from the fake"  # the fake accepted it
    assert thinking(env) == expected


@pytest.mark.parametrize(
    ("model", "configured", "expected"),
    [
        ("gemini-3-flash-preview", {"thinking_level": "minimal"}, {"thinkingLevel": "HIGH"}),
        ("gemini-2.5-flash", {"thinking_budget": 512}, {"thinkingBudget": 24576}),
    ],
)
async def test_the_request_wins_over_the_configured_control_one_field_only(
    env: Env, model: str, configured: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with env.factory(env.config(model=model, include_thoughts=True, **configured)) as f:
        await f.chat_async("Think", reasoning_effort="high")
        assert thinking(env) == {"includeThoughts": True, **expected}
        await f.chat_async("Think")  # without an effort, the configured one
    assert thinking(env) == {"includeThoughts": True, **_camel(configured)}


def _camel(configured: dict[str, Any]) -> dict[str, Any]:
    names = {"thinking_level": "thinkingLevel", "thinking_budget": "thinkingBudget"}
    return {names[k]: v.upper() if isinstance(v, str) else v for k, v in configured.items()}


async def test_thoughts_come_back_as_reasoning_content(env: Env) -> None:
    env.fake.add(Turn(text="42", thoughts="Six times seven."))
    async with env.factory(env.config(model="gemini-3-flash-preview", include_thoughts=True)) as f:
        result = await f.chat_async("Answer?", reasoning_effort="low")
    assert result.choices[0].message["reasoning_content"] == "Six times seven."
    assert thinking(env) == {"includeThoughts": True, "thinkingLevel": "LOW"}


async def test_an_unknown_effort_is_a_clear_bad_request(env: Env) -> None:
    async with env.factory() as f:
        with pytest.raises(BadRequestError, match="none, minimal, low, medium, high, xhigh, max"):
            await f.chat_async("x", reasoning_effort="extreme")
    assert env.fake.requests == []


# -- model rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3.1-pro-preview", "gemini-3.5-flash"])
async def test_penalties_are_dropped_for_models_that_reject_them(env: Env, model: str) -> None:
    async with env.factory(env.config(model=model)) as f:
        result = await f.chat_async("x", presence_penalty=0.5, frequency_penalty=0.2, temperature=0.3)
    assert result.choices[0].message.content == "Hello from the fake"
    config = env.fake.requests[-1].body["generationConfig"]
    assert config == {"temperature": 0.3}


async def test_penalties_under_the_fail_policy_are_a_clear_error(env: Env) -> None:
    async with env.factory(env.config(unsupported_params="fail")) as f:
        with pytest.raises((BadRequestError, AllDeploymentsFailedError)) as info:
            await f.chat_async("x", presence_penalty=0.5)
    error = info.value if isinstance(info.value, BadRequestError) else info.value.last_error
    assert isinstance(error, BadRequestError)
    assert error.param == "presence_penalty" and "Penalty is not enabled" in str(error)
    assert env.fake.requests == []


async def test_penalties_still_reach_models_that_take_them(env: Env) -> None:
    async with env.factory(env.config(model="gemini-2.0-flash")) as f:
        await f.chat_async("x", presence_penalty=0.5, frequency_penalty=0.2)
    config = env.fake.requests[-1].body["generationConfig"]
    assert config == {"presencePenalty": 0.5, "frequencyPenalty": 0.2}


async def test_the_fake_rejects_what_the_rules_prevent(env: Env) -> None:
    """The fake is strict: without the rule's adaptation the request is a 400."""
    async with env.factory(env.config(model="gemini-2.5-flash")) as f:
        with pytest.raises(BadRequestError, match=r"Penalty is not enabled for models/gemini-2\.5-flash"):
            await f.chat_async("x", extra_body={"generationConfig": {"presencePenalty": 0.5}})
        with pytest.raises(BadRequestError, match="Only one of thinking_level and thinking_budget"):
            await f.chat_async(
                "x", extra_body={"generationConfig": {"thinkingConfig": {"thinkingLevel": "low", "thinkingBudget": 1}}}
            )


# -- provider extras (top-level unknown fields: the OpenAI SDK's extra_body through the gateway) -----


async def test_top_level_extras_are_merged_like_extra_body(env: Env) -> None:
    async with env.factory(env.config(model="gemini-3-flash-preview")) as f:
        await f.chat_async(
            "x",
            temperature=0.2,
            reasoning_effort="high",
            generationConfig={"topK": 20, "thinkingConfig": {"thinkingLevel": "LOW"}},
            cachedContent="cachedContents/abc123",
            safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            store=True,  # an OpenAI-only field: not forwarded (Gemini rejects unknown names)
        )
    body = env.fake.requests[-1].body
    assert body["generationConfig"] == {"temperature": 0.2, "topK": 20, "thinkingConfig": {"thinkingLevel": "LOW"}}
    assert body["cachedContent"] == "cachedContents/abc123"
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert "store" not in body


async def test_an_extra_budget_replaces_the_computed_level(env: Env) -> None:
    async with env.factory(env.config(model="gemini-3-flash-preview")) as f:
        await f.chat_async("x", reasoning_effort="high", extra_body={"generationConfig": {"thinkingConfig": {
            "thinkingBudget": 2048}}})  # fmt: skip
    assert thinking(env) == {"thinkingBudget": 2048}
