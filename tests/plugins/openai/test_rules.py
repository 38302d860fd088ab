"""The openai plugin's model rules as data: which models each concerns, what it adapts, and what the
``fail`` policy says; and which token-limit field each kind of endpoint gets."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import BadRequestError, ChatRequest
from llm_factory_core.providers import apply_model_rules
from llm_factory_openai import OpenAIProvider
from llm_factory_openai._provider import _azure_version_is_modern
from llm_factory_openai._rules import OPENAI_RULES

MESSAGES = [{"role": "user", "content": "Hi"}]


def adapted(model: str, **params: Any) -> dict[str, Any]:
    rules = tuple(r for r in OPENAI_RULES if r.matches(model))
    request = ChatRequest(messages=MESSAGES, **params)
    return apply_model_rules(request, rules, "adapt", provider="openai", deployment="d").openai_params()


def test_the_provider_declares_the_rules() -> None:
    assert OpenAIProvider.model_rules is OPENAI_RULES
    assert all(rule.source for rule in OPENAI_RULES)


@pytest.mark.parametrize(
    "model",
    ["gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-2025-08-07", "gpt-5.1", "gpt-5.2", "gpt-5.4", "gpt-5.1-chat",
     "gpt-5-chat-latest", "o1", "o1-mini", "o3", "o3-mini", "o4-mini", "openai/o3", "GPT-5", "codex-mini-latest"],
)  # fmt: skip
def test_reasoning_models_get_max_completion_tokens(model: str) -> None:
    assert adapted(model, max_tokens=4096) == {"max_completion_tokens": 4096}
    assert adapted(model, max_tokens=4096, max_completion_tokens=500) == {"max_completion_tokens": 500}


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-nano", "gpt-3.5-turbo", "llama3.1:8b"])
def test_other_models_are_left_alone(model: str) -> None:
    params = {"max_tokens": 100, "temperature": 0.2, "top_p": 0.5, "presence_penalty": 0.3, "logprobs": True}
    assert adapted(model, **params) == params


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "o3", "o4-mini"])
def test_fixed_sampling_models_lose_non_default_sampling_controls(model: str) -> None:
    params = {
        "temperature": 0.7,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "logprobs": True,
        "top_logprobs": 3,
        "logit_bias": {"50256": -100},
        "seed": 7,
    }
    assert adapted(model, **params, reasoning_effort="none") == {"seed": 7, "reasoning_effort": "none"}
    defaults = {"temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "logprobs": False}
    assert adapted(model, **defaults) == defaults  # the API's defaults are accepted: sent unchanged


@pytest.mark.parametrize("model", ["gpt-5.1", "gpt-5.2", "gpt-5.4-mini"])
def test_newer_gpt5_keeps_sampling_only_with_reasoning_effort_none(model: str) -> None:
    params = {"temperature": 0.2, "top_p": 0.9, "logprobs": True, "top_logprobs": 2}
    assert adapted(model, **params, reasoning_effort="none") == {**params, "reasoning_effort": "none"}
    assert adapted(model, **params, reasoning_effort="low") == {"reasoning_effort": "low"}
    assert adapted(model, **params) == {}
    assert adapted(model, presence_penalty=0.4, reasoning_effort="none") == {"reasoning_effort": "none"}


@pytest.mark.parametrize("model", ["gpt-5-chat-latest", "gpt-5.1-chat", "azure/gpt-5-chat"])
def test_chat_variants_keep_sampling_controls(model: str) -> None:
    assert adapted(model, temperature=0.3, top_p=0.8) == {"temperature": 0.3, "top_p": 0.8}


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("gpt-5", {"max_tokens": 10}, "max_tokens"),
        ("o3", {"temperature": 0.5}, "temperature"),
        ("gpt-5.2", {"top_p": 0.5}, "top_p"),
        ("o4-mini", {"frequency_penalty": 1.0}, "frequency_penalty"),
    ],
)
def test_the_fail_policy_names_the_parameter_and_the_rule(model: str, params: dict[str, Any], param: str) -> None:
    rules = tuple(r for r in OPENAI_RULES if r.matches(model))
    with pytest.raises(BadRequestError) as info:
        apply_model_rules(ChatRequest(messages=MESSAGES, **params), rules, "fail", provider="openai", deployment="d")
    error = info.value
    assert (error.status, error.param, error.code) == (400, param, "unsupported_parameter")
    assert str(error).startswith(param) and "(rule openai." in str(error)


@pytest.mark.parametrize(
    ("version", "modern"),
    [
        ("2024-02-15-preview", False),
        ("2024-06-01", False),
        ("2024-08-01-preview", False),
        ("2024-09-01-preview", True),
        ("2024-10-21", True),
        ("2025-04-01-preview", True),
        ("preview", True),
        (None, True),
    ],
)
def test_which_azure_api_versions_know_the_new_fields(version: str | None, modern: bool) -> None:
    assert _azure_version_is_modern(version) is modern
