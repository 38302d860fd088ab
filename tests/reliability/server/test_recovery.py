"""Through the gateway: a flapping primary (the fallback answers during the outage, the primary
is used again within seconds) and opt-in stream continuation (``stream_continuation``: the rest
of a broken stream from a prefill-capable fallback; a refusal there never hides the break)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from llm_factory_core import LLMFactory, ModelConfig, hookimpl
from llm_factory_core.providers import Capabilities, PluginRegistry
from llm_factory_core.testing import Fault, FaultyUpstream
from llm_factory_openai import OpenAIProvider

from ..conftest import BACKUP_KEY, PRIMARY_KEY, ROUTER, TIMEOUTS, expected_text
from .conftest import Serve, assert_answered_by, assert_stream_broke, call, words

SLACK = {**TIMEOUTS, "first_token_timeout": 5.0, "chunk_timeout": 5.0, "timeout": 10.0}
"""Continuation is about a cut, not a clock: with the suite's 0.3 s first-token limit a busy CI
machine sometimes failed the primary over before its first token, and the test saw the fallback's
answer (or refusal) instead of the break it is about."""

OUTAGE = 1.0
RECOVERY_BOUND = 3.0


@pytest.mark.parametrize("via", ["sdk-chat", "http-stream"])
def test_a_flapping_primary(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.down(OUTAGE, during=Fault.server_error(503)))
    server = serve()
    answers: list[tuple[float, str]] = []
    give_up = time.monotonic() + OUTAGE + RECOVERY_BOUND + 2
    while time.monotonic() < give_up:
        reply = call(server, via)  # every request is answered, outage or not
        assert reply.model is not None
        assert_answered_by(reply, reply.model)
        answers.append((time.monotonic(), reply.model))
        if [m for _, m in answers[-3:]] == ["primary"] * 3:
            break
        time.sleep(0.02)
    outage_end = upstream.requests[0].at + OUTAGE
    during = [m for t, m in answers if t < outage_end]
    assert during and set(during) == {"backup"}
    recovered = [t for t, m in answers if m == "primary"]
    assert recovered and recovered[0] < outage_end + RECOVERY_BOUND
    assert [m for _, m in answers[-3:]] == ["primary"] * 3


class PrefillProvider(OpenAIProvider):
    """The openai provider, declared able to continue an assistant prefill (as Claude is)."""

    key = "prefill-openai"
    capabilities = Capabilities(prefill=True)


class _Plugin:
    @hookimpl
    def llm_factory_register_providers(self, register: Any) -> None:
        register(PrefillProvider)


def continuation_factory(upstream: FaultyUpstream) -> LLMFactory:
    import llm_factory_openai

    registry = PluginRegistry(entry_points=False)
    registry.register(llm_factory_openai)
    registry.register(_Plugin())
    configs = [
        ModelConfig(provider=p, model_name=n, name=n, api_base=upstream.base_url, api_key=k, **SLACK)
        for p, n, k in (("openai", "primary", PRIMARY_KEY), ("prefill-openai", "backup", BACKUP_KEY))
    ]
    return LLMFactory(configs, registry=registry, stream_continuation=True, **ROUTER)


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
def test_continuation_finishes_a_broken_stream_from_the_fallback(
    upstream: FaultyUpstream, serve: Serve, via: str
) -> None:
    upstream.set_rule("primary", Fault.cut(3))
    reply = call(serve(factory=continuation_factory(upstream)), via)
    assert reply.error is None and reply.status == 200
    assert reply.text == words("primary", 3) + expected_text("backup")  # the fake's continuation
    assert reply.finish_reason == "stop" and reply.done in (None, True)
    assert len(reply.ids) == 1  # one stream for the client
    [continued] = [r for r in upstream.requests if r.model == "backup"]
    assert continued.body["messages"][-1] == {"role": "assistant", "content": words("primary", 3)}


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
def test_a_fallback_refusing_prefill_does_not_hide_the_break(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.cut(3))
    refusal = {"error": {"message": "prefill refused by this model", "type": "invalid_request_error", "code": None}}
    upstream.set_rule("backup", Fault.error(400, refusal))
    reply = call(serve(factory=continuation_factory(upstream)), via)
    assert_stream_broke(reply, words("primary", 3))
    assert reply.error is not None
    assert "broke" in reply.error["message"] and "refused" not in reply.error["message"]
    assert upstream.count("backup") == 1
