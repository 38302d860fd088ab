"""Rescuing broken streams (issue 14, item 2), through the library on both HTTP transports: a cut
or stalled stream is continued by a deployment declared ``prefill: true`` in configuration (an
OpenAI-compatible server), with its ``prefill_params`` (vLLM's switch) in that request only; a
deployment without prefill is never asked; the stall limit after commit defaults to the attempt
``timeout`` when that is the shorter."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import ConfigurationError, LLMFactory, ModelConfig, StreamInterruptedError
from llm_factory_core._prefill import can_prefill
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import BACKUP_KEY, PRIMARY_KEY, ROUTER, TIMEOUTS, Outcome, ask, expected_text
from .test_streams import words

pytestmark = pytest.mark.anyio

VLLM = {"continue_final_message": True, "add_generation_prompt": False}
"""vLLM's chat completion extra parameters for continuing the final (assistant) message."""


def factory(upstream: FaultyUpstream, transport: str, backup: dict[str, Any], **router: Any) -> LLMFactory:
    configs = [
        ModelConfig(provider="openai", model_name="primary", name="primary", api_base=upstream.base_url,
                    api_key=PRIMARY_KEY, **TIMEOUTS),
        ModelConfig(provider="openai", model_name="backup", name="backup", api_base=upstream.base_url,
                    api_key=BACKUP_KEY, **TIMEOUTS, **backup),
    ]  # fmt: skip
    return LLMFactory(configs, transport=transport, **{**ROUTER, "stream_continuation": True, **router})


@pytest.mark.parametrize("fault", [Fault.cut(3), Fault.cut(3, reset=True), Fault.stall(3)], ids=repr)
async def test_a_broken_stream_is_continued_by_a_prefill_deployment(
    upstream: FaultyUpstream, http_transport: str, fault: Fault
) -> None:
    upstream.set_rule("primary", fault)
    async with factory(upstream, http_transport, {"prefill": True}) as f:
        out = await ask(f, "stream")
    assert out.text == words("primary", 3) + expected_text("backup")  # the fake answers in full
    assert out.finish_reason == "stop" and out.deployment == "backup"
    assert len({c.id for c in out.chunks}) == 1  # one stream for the caller
    [continued] = [r for r in upstream.requests if r.model == "backup"]
    assert continued.body["messages"][-1] == {"role": "assistant", "content": words("primary", 3)}
    assert "continue_final_message" not in continued.body


async def test_prefill_params_go_with_the_continuation_only(upstream: FaultyUpstream, http_transport: str) -> None:
    upstream.set_rule("primary", Fault.stall(2))
    async with factory(upstream, http_transport, {"prefill": True, "prefill_params": VLLM}) as f:
        out = await ask(f, "stream")
        assert out.text == words("primary", 2) + expected_text("backup")
        upstream.set_rule("primary", Fault.ok())
        upstream.reset()
        out = await ask(f, "stream")  # an ordinary request to the same deployments
    [first] = [r for r in upstream.requests if r.model == "primary"]
    assert "continue_final_message" not in first.body


async def test_the_vllm_switch_reaches_the_backup(upstream: FaultyUpstream, http_transport: str) -> None:
    upstream.set_rule("primary", Fault.cut(2))
    async with factory(upstream, http_transport, {"prefill": True, "prefill_params": VLLM}) as f:
        await ask(f, "stream")
    [continued] = [r for r in upstream.requests if r.model == "backup"]
    assert continued.body["continue_final_message"] is True
    assert continued.body["add_generation_prompt"] is False
    assert continued.body["messages"][-1]["role"] == "assistant"


@pytest.mark.parametrize("backup", [{}, {"prefill": False}], ids=["undeclared", "declared-false"])
async def test_without_a_prefill_deployment_the_break_is_reported_at_once(
    upstream: FaultyUpstream, http_transport: str, backup: dict[str, Any]
) -> None:
    upstream.set_rule("primary", Fault.stall(3))
    out = Outcome()
    async with factory(upstream, http_transport, backup) as f:
        with pytest.raises(StreamInterruptedError):
            await ask(f, "stream", into=out)
    assert out.text == words("primary", 3)
    assert upstream.count("backup") == 0


def test_the_configured_prefill_overrides_the_provider() -> None:
    def deployment(provider: str, **kw: Any) -> Any:
        f = LLMFactory([ModelConfig(provider=provider, model_name="m", api_key="sk-test-000000000000", **kw)])
        try:
            [d] = f.router.groups["m"]
            return d
        finally:
            f.close()

    assert not can_prefill(deployment("openai"))
    assert can_prefill(deployment("openai", prefill=True))
    assert can_prefill(deployment("deepseek"))  # its prefix mode
    assert not can_prefill(deployment("deepseek", prefill=False))


def test_prefill_params_cannot_steer_the_request() -> None:
    config = {"providers": [{"provider": "openai", "model_name": "m", "prefill_params": {"model": "x", "stream": 0}}]}
    with pytest.raises(ConfigurationError) as info:
        LLMFactory(config)
    assert "providers[0].prefill_params" in str(info.value) and "model, stream" in str(info.value)


@pytest.mark.parametrize(
    ("limits", "stall_limit"),
    [
        ({}, 60.0),
        ({"timeout": 30.0}, 30.0),
        ({"timeout": 300.0}, 60.0),
        ({"timeout": 30.0, "chunk_timeout": 90.0}, 90.0),
    ],
)
def test_the_stall_limit_after_commit_defaults_to_the_attempt_timeout(
    limits: dict[str, float], stall_limit: float
) -> None:
    with LLMFactory([ModelConfig(provider="openai", model_name="m", api_key="sk-test-000000000000", **limits)]) as f:
        [d] = f.router.groups["m"]
        assert d.timeouts.chunk == stall_limit
