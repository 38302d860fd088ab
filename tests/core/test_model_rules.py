"""Model rules: declared by a provider, matched once per deployment, applied on the way out under
the deployment's policy (adapt or fail), never changing the caller's request."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from llm_factory_core import BadRequestError, ChatCompletion, ChatRequest, LLMFactory, ModelConfig, hookimpl
from llm_factory_core.providers import ParamRule, PluginRegistry, Provider
from llm_factory_core.testing import openai_completion

NO_PENALTY = ParamRule(
    name="test.no_penalty",
    param="presence_penalty",
    models=("strict-*",),
    check=lambda r: "presence_penalty is not supported" if r.presence_penalty is not None else None,
    adapt=lambda r: {"presence_penalty": None},
    source="https://example.invalid/docs",
)
RENAME = ParamRule(
    name="test.rename",
    param="max_tokens",
    models=("strict-*",),
    check=lambda r: "max_tokens is not supported" if r.max_tokens is not None else None,
    adapt=lambda r: {"max_tokens": None, "max_completion_tokens": r.max_completion_tokens or r.max_tokens},
    source="https://example.invalid/docs",
)
DROP_EXTRA = ParamRule(
    name="test.drop_extra",
    param="top_k",
    models=(),
    check=lambda r: "top_k is not supported" if (r.model_extra or {}).get("top_k") is not None else None,
    adapt=lambda r: {"top_k": None},
    source="https://example.invalid/docs",
)


class Recorder(Provider):
    key = "recorder"
    model_rules: ClassVar[tuple[ParamRule, ...]] = (NO_PENALTY, RENAME, DROP_EXTRA)
    seen: ClassVar[list[ChatRequest]] = []

    async def chat(self, request: ChatRequest) -> Any:
        Recorder.seen.append(request)
        return ChatCompletion.model_validate(openai_completion("ok", model=self.settings.model))


class Plugin:
    @hookimpl
    def llm_factory_register_providers(self, register: Any) -> None:
        register(Recorder)


def factory(model: str, **config: Any) -> LLMFactory:
    registry = PluginRegistry(entry_points=False)
    registry.register(Plugin(), origin="tests")
    return LLMFactory(
        [ModelConfig(provider="recorder", model_name="m", model=model, api_key="k" * 12, **config)],
        registry=registry,
        num_retries=0,
    )


@pytest.fixture(autouse=True)
def _clear() -> None:
    Recorder.seen.clear()


def test_rules_match_by_pattern_and_prefix() -> None:
    assert NO_PENALTY.matches("strict-1")
    assert NO_PENALTY.matches("STRICT-2")
    assert NO_PENALTY.matches("us.vendor/strict-3")
    assert not NO_PENALTY.matches("lenient-1")
    assert DROP_EXTRA.matches("anything")


def test_adapt_rewrites_a_copy_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "llm_factory_core.model_rules")
    with factory("strict-1") as f:
        messages = [{"role": "user", "content": "hi"}]
        f.chat(messages, presence_penalty=0.5, max_tokens=100, top_k=5)
        f.chat(messages, presence_penalty=0.5, max_tokens=100)
    sent = Recorder.seen[0]
    assert sent.presence_penalty is None
    assert sent.max_tokens is None and sent.max_completion_tokens == 100
    assert "top_k" not in sent.openai_params()
    adapted = [r for r in caplog.records if "adapted a request" in r.getMessage()]
    assert len(adapted) == 3  # once per rule and deployment, not per call


def test_rules_for_other_models_do_not_apply() -> None:
    with factory("lenient-1") as f:
        f.chat("hi", presence_penalty=0.5, max_tokens=100)
    sent = Recorder.seen[0]
    assert sent.presence_penalty == 0.5 and sent.max_tokens == 100


def test_fail_policy_answers_400_naming_the_parameter() -> None:
    with factory("strict-1", unsupported_params="fail") as f, pytest.raises(BadRequestError) as caught:
        f.chat("hi", presence_penalty=0.5)
    assert caught.value.param == "presence_penalty"
    assert caught.value.code == "unsupported_parameter"
    assert "test.no_penalty" in caught.value.message and "unsupported_params" in caught.value.message
    assert Recorder.seen == []


def test_a_misspelt_policy_is_a_configuration_error() -> None:
    from llm_factory_core import ConfigurationError

    with pytest.raises(ConfigurationError, match="unsupported_params"):
        factory("strict-1", unsupported_params="adpat")


def test_a_max_tokens_default_does_not_ride_along_with_max_completion_tokens() -> None:
    with factory("lenient-1", max_tokens=4096, temperature=0.7) as f:
        f.chat("hi", max_completion_tokens=500)
        f.chat("hi")
    first, second = Recorder.seen
    assert first.max_tokens is None and first.max_completion_tokens == 500 and first.temperature == 0.7
    assert second.max_tokens == 4096


def test_a_calls_extra_body_merges_with_the_deployments() -> None:
    with factory("lenient-1", default_params={"extra_body": {"a": 1, "b": 2}}) as f:
        f.chat("hi", extra_body={"b": 3, "c": 4})
        f.chat("hi")
    merged, default = Recorder.seen
    assert merged.extra_body == {"a": 1, "b": 3, "c": 4}
    assert default.extra_body == {"a": 1, "b": 2}
