"""Through the gateway: a stream cut or stalled after it started is continued by a fallback
declared ``prefill: true`` in configuration (an OpenAI-compatible server, vLLM's switch in
``prefill_params``): one 200 stream, the partial text then the continuation, ``[DONE]``."""

from __future__ import annotations

import pytest

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import Fault, FaultyUpstream

from ..conftest import BACKUP_KEY, PRIMARY_KEY, ROUTER, TIMEOUTS, expected_text
from .conftest import Serve, assert_stream_broke, call, words

VLLM = {"continue_final_message": True, "add_generation_prompt": False}


def configured(upstream: FaultyUpstream, prefill: bool, transport: str) -> LLMFactory:
    backup = {"prefill": True, "prefill_params": VLLM} if prefill else {}
    configs = [
        ModelConfig(provider="openai", model_name="primary", name="primary", api_base=upstream.base_url,
                    api_key=PRIMARY_KEY, **TIMEOUTS),
        ModelConfig(provider="openai", model_name="backup", name="backup", api_base=upstream.base_url,
                    api_key=BACKUP_KEY, **TIMEOUTS, **backup),
    ]  # fmt: skip
    return LLMFactory(configs, transport=transport, stream_continuation=True, **ROUTER)


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
@pytest.mark.parametrize("fault", [Fault.cut(3), Fault.stall(3)], ids=repr)
def test_a_broken_stream_is_finished_by_a_configured_prefill_fallback(
    upstream: FaultyUpstream, serve: Serve, via: str, fault: Fault, http_transport: str
) -> None:
    upstream.set_rule("primary", fault)
    reply = call(serve(factory=configured(upstream, True, http_transport)), via)
    assert reply.error is None and reply.status == 200
    assert reply.text == words("primary", 3) + expected_text("backup")
    assert reply.finish_reason == "stop" and reply.done in (None, True)
    assert len(reply.ids) == 1
    [continued] = [r for r in upstream.requests if r.model == "backup"]
    assert continued.body["messages"][-1] == {"role": "assistant", "content": words("primary", 3)}
    assert continued.body["continue_final_message"] is True and continued.body["add_generation_prompt"] is False


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
def test_a_stall_without_a_prefill_fallback_ends_with_an_error_event(
    upstream: FaultyUpstream, serve: Serve, via: str, http_transport: str
) -> None:
    upstream.set_rule("primary", Fault.stall(3))
    reply = call(serve(factory=configured(upstream, False, http_transport)), via)
    assert_stream_broke(reply, words("primary", 3))
    assert upstream.count("backup") == 0
