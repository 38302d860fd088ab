"""Opt-in stream continuation: after a committed text stream breaks, a deployment that supports
assistant prefill continues the text; a refusal there never hides the original failure."""

from __future__ import annotations

import json

import httpx
import pytest

from llm_factory_core import LLMFactory, ModelConfig, StreamInterruptedError
from llm_factory_core.providers import Capabilities, PluginRegistry
from llm_factory_core.testing import MockUpstream, openai_chunks, sse_response
from llm_factory_openai import OpenAIProvider

from .helpers import error, host_of

pytestmark = pytest.mark.anyio


class PrefillProvider(OpenAIProvider):
    key = "prefill-openai"
    capabilities = Capabilities(prefill=True)


def registry() -> PluginRegistry:
    import llm_factory_openai

    reg = PluginRegistry(entry_points=False)
    reg.register(llm_factory_openai)

    class Plugin:
        from llm_factory_core import hookimpl

        @hookimpl
        def llm_factory_register_providers(self, register):  # type: ignore[no-untyped-def]
            register(PrefillProvider)

    reg.register(Plugin())
    return reg


def configs() -> list[ModelConfig]:
    return [
        ModelConfig(provider="openai", model_name="m", api_key="k-primary-0000", api_base="https://a.test/v1"),
        ModelConfig(provider="prefill-openai", model_name="m", api_key="k-backup-0000", api_base="https://b.test/v1"),
    ]


def make(upstream: MockUpstream, **kw: object) -> LLMFactory:
    return LLMFactory(
        configs(),
        transport=upstream.transport,
        registry=registry(),
        strategy="first_available",
        cooldown=0.0,
        retry_backoff=0.0,
        **kw,
    )


def cut_primary(request: httpx.Request) -> httpx.Response:
    return sse_response(openai_chunks(["Hello", " wor", "ld!"], id="chatcmpl-primary"), fail_after=3)


async def test_continuation_finishes_the_text_on_a_prefill_deployment() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if host_of(request) == "a":
            return cut_primary(request)
        return sse_response(openai_chunks(["ld!"], id="chatcmpl-backup", model="backup-model"))

    upstream = MockUpstream(route)
    async with make(upstream, stream_continuation=True) as f:
        stream = f.stream_async("say hello world")
        chunks = [c async for c in stream]
        assert stream.deployment is not None and "b.test" not in stream.deployment
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world!"
    assert {c.id for c in chunks} == {"chatcmpl-primary"}, "one stream, one id"
    assert chunks[-1].choices[0].finish_reason == "stop"
    backup_body = json.loads(upstream.requests[1].content)
    assert backup_body["messages"][-1] == {"role": "assistant", "content": "Hello wor"}


async def test_a_refusing_continuation_reports_the_original_failure() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if host_of(request) == "a":
            return cut_primary(request)
        return error(400, message="prefill not supported")(request)

    async with make(MockUpstream(route), stream_continuation=True) as f:
        with pytest.raises(StreamInterruptedError) as info:
            async for _ in f.stream_async("hi"):
                pass
    assert "prefill not supported" not in str(info.value)
    assert "a.test" not in str(info.value) and "broke after it started" in str(info.value)


async def test_without_the_option_a_break_is_an_error() -> None:
    upstream = MockUpstream(cut_primary)
    async with make(upstream) as f:
        with pytest.raises(StreamInterruptedError):
            async for _ in f.stream_async("hi"):
                pass
    assert len(upstream.requests) == 1


async def test_tool_call_streams_are_not_continued() -> None:
    def tool_stream(request: httpx.Request) -> httpx.Response:
        events = openai_chunks([], finish_reason=None)
        events.append(
            {
                **events[0],
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "type": "function",
                                    "function": {"name": "f", "arguments": "{"},
                                }
                            ]
                        },
                        "finish_reason": None,
                    }
                ],
            }
        )
        return sse_response(events, fail_after=2 if host_of(request) == "a" else None)

    upstream = MockUpstream(tool_stream)
    async with make(upstream, stream_continuation=True) as f:
        with pytest.raises(StreamInterruptedError):
            async for _ in f.stream_async("hi"):
                pass
    assert len(upstream.requests) == 1


async def test_with_nobody_able_to_continue_the_original_failure_comes_at_once() -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        chunks = openai_chunks(["Hello", " there"], finish_reason=None)
        return sse_response(chunks, done=False)

    upstream = MockUpstream(cut)
    plain = [
        ModelConfig(provider="openai", model_name="m", api_key="k-primary-0000", api_base="https://a.test/v1"),
        ModelConfig(provider="openai", model_name="m", api_key="k-second-0000", api_base="https://b.test/v1"),
    ]
    factory = LLMFactory(
        plain,
        transport=upstream.transport,
        registry=registry(),
        strategy="first_available",
        stream_continuation=True,
        retry_backoff=5.0,  # walking the plan would sleep: the test would notice
    )
    async with factory:
        with pytest.raises(StreamInterruptedError):
            async for _ in factory.stream_async("hi"):
                pass
    assert [host_of(r) for r in upstream.requests] == ["a"]  # no deployment could continue: none was asked
