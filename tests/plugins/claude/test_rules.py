"""Claude's model rules (``ClaudeProvider.model_rules``) under both policies, against the fakes
(which answer 400 for what today's models reject), over real sockets on both transports."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_claude import ClaudeProvider
from llm_factory_claude._models import model_info
from llm_factory_claude._rules import CLAUDE_RULES
from llm_factory_core import AllDeploymentsFailedError, BadRequestError

from .fake_claude import FakeAnthropic
from .helpers import (
    BEDROCK_MODELS,
    OLD_MODEL,
    WEATHER_TOOL,
    anthropic_config,
    bedrock_config,
    bedrock_fake,
    served,
)


def rule(name: str) -> Any:
    return next(r for r in CLAUDE_RULES if r.name == name)


def test_the_provider_declares_its_rules() -> None:
    assert ClaudeProvider.model_rules is CLAUDE_RULES
    assert len({r.name for r in CLAUDE_RULES}) == len(CLAUDE_RULES)
    assert all(r.source.startswith("https://") for r in CLAUDE_RULES)


@pytest.mark.parametrize("model", [*BEDROCK_MODELS, "claude-opus-4-1-20250805", "claude-sonnet-4-6"])
def test_one_sampler_matches_every_form_of_today_s_ids(model: str) -> None:
    assert rule("claude.one_sampler").matches(model)
    assert model_info(model).family != "unknown"


@pytest.mark.parametrize("model", [OLD_MODEL, "claude-3-7-sonnet-20250219", "anthropic.claude-opus-4-20250514-v1:0"])
def test_one_sampler_spares_models_that_take_both(model: str) -> None:
    assert not rule("claude.one_sampler").matches(model)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("params", "sent"),
    [
        ({"stop": ["\n", "END", " \t"]}, {"stop_sequences": ["END"]}),
        ({"stop": "\n"}, {}),
        ({"stop": ["", "x"]}, {"stop_sequences": ["x"]}),
    ],
)
async def test_whitespace_stop_sequences_are_dropped(
    params: dict[str, Any], sent: dict[str, Any], http_transport: str
) -> None:
    fake = bedrock_fake()
    async with served(fake, [bedrock_config(model=OLD_MODEL)], http_transport) as f:
        await f.chat_async("Hi", **params)
    body = fake.bodies[-1]
    assert {k: body[k] for k in ("stop_sequences",) if k in body} == sent


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("params", "param"),
    [({"temperature": 0.2, "top_p": 0.5}, "top_p"), ({"stop": "\n"}, "stop"), ({"reasoning_effort": "high"}, None)],
)
async def test_the_fail_policy_refuses_before_any_call(
    params: dict[str, Any], param: str | None, http_transport: str
) -> None:
    fake = FakeAnthropic()
    model = "claude-3-5-haiku-20241022" if param is None else "claude-sonnet-4-5"
    config = anthropic_config(model=model, unsupported_params="fail")
    async with served(fake, [config], http_transport) as f:
        with pytest.raises((BadRequestError, AllDeploymentsFailedError)) as info:
            await f.chat_async("Hi", **params)
    error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
    assert isinstance(error, BadRequestError) and error.code == "unsupported_parameter"
    assert error.param == (param or "reasoning_effort")
    assert fake.bodies == []


@pytest.mark.anyio
async def test_thinking_adapts_sampling_and_tool_choice(http_transport: str) -> None:
    """With thinking on: temperature only 1, no top_k, top_p >= 0.95, tool_choice auto or none."""
    fake = bedrock_fake()
    async with served(fake, [bedrock_config()], http_transport) as f:
        await f.chat_async(
            "Hi", reasoning_effort="low", temperature=0.2, top_k=40, tools=[WEATHER_TOOL], tool_choice="required"
        )
        await f.chat_async("Hi", extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 5})
        await f.chat_async("Hi", reasoning_effort="low", top_p=0.97)
        await f.chat_async("Hi", temperature=0.2, extra_body={"top_k": 5})  # no thinking: untouched
    first, second, third, fourth = fake.bodies
    assert "temperature" not in first and "top_k" not in first
    assert first["tool_choice"] == {"type": "auto"} and first["thinking"]["type"] == "enabled"
    assert "top_k" not in second and second["thinking"]["budget_tokens"] == 2048
    assert third["top_p"] == 0.97
    assert (fourth["temperature"], fourth["top_k"]) == (0.2, 5)
