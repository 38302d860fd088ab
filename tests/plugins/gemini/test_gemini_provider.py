"""The Gemini plugin through ``LLMFactory`` against the fake: OpenAI shapes out, typed errors,
failover, streaming contract, thought signatures across turns, configuration from the environment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import llm_factory_gemini
from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    LLMFactory,
    ModelConfig,
    ProviderType,
    RateLimitError,
    StreamInterruptedError,
)
from llm_factory_core.providers import PluginRegistry

from .fake_gemini import VALID_KEY, FakeGemini, GeminiError, Turn

OTHER_KEY = "AIzaSy-fake-gemini-key-0002"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def registry() -> PluginRegistry:
    reg = PluginRegistry(entry_points=False)
    reg.register(llm_factory_gemini, origin="test")
    return reg


def config(name: str = "first", key: str = VALID_KEY, model: str = "gemini-2.5-flash", **kw: Any) -> ModelConfig:
    return ModelConfig(provider=ProviderType.GEMINI, model_name="gemini", model=model, api_key=key, name=name, **kw)


def factory(fake: FakeGemini, *configs: ModelConfig, **kw: Any) -> LLMFactory:
    kw.setdefault("cooldown", 0.0)
    kw.setdefault("retry_backoff", 0.0)
    kw.setdefault("strategy", "first_available")
    return LLMFactory(list(configs) or [config()], transport=fake.transport, registry=registry(), **kw)


def message_from_stream(chunks: list[Any]) -> dict[str, Any]:
    """What an OpenAI client assembles from stream deltas."""
    content = ""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(
                    call.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                slot["id"] += call.id or ""
                slot["function"]["name"] += call.function.name or ""
                slot["function"]["arguments"] += call.function.arguments or ""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


# -- the tool-calling conversation (Done when) -------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_conversation_round_trips_the_thought_signature(stream: bool) -> None:
    fake = FakeGemini()
    fake.add(Turn(calls=[("get_weather", {"city": "Tokyo"})]), Turn(text="It is 21 C in Tokyo."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Tokyo?"}]
    # gemini-3 models reject a function call sent back without its signature (the fake too).
    async with factory(fake, config(model="gemini-3-pro-preview")) as f:
        if stream:
            chunks = [c async for c in f.stream_async(messages, tools=TOOLS)]
            assert chunks[-1].choices[0].finish_reason == "tool_calls"
            assistant = message_from_stream(chunks)
        else:
            first = await f.chat_async(messages, tools=TOOLS)
            assert first.choices[0].finish_reason == "tool_calls"
            assert first.choices[0].message.content is None
            assistant = first.choices[0].message.model_dump(exclude_none=True)
        [call] = assistant["tool_calls"]
        assert call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Tokyo"}
        messages += [assistant, {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}]

        second = await f.chat_async(messages, tools=TOOLS)
    assert second.choices[0].message.content == "It is 21 C in Tokyo."
    assert second.choices[0].finish_reason == "stop"
    sent = fake.requests[-1].body["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}},
            "thoughtSignature": fake.issued_signatures["get_weather"],
        }
    ]
    assert sent[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]


@pytest.mark.anyio
async def test_signature_travels_in_extra_content_when_not_in_id() -> None:
    fake = FakeGemini().add(Turn(calls=[("get_weather", {"city": "Oslo"})]), Turn(text="Cold."))
    async with factory(fake, config(model="gemini-3-pro-preview", thought_signature_in_id=False)) as f:
        first = await f.chat_async("Weather in Oslo?", tools=TOOLS)
        assert first.choices[0].message.tool_calls is not None
        call = first.choices[0].message.tool_calls[0]
        assert "~ts~" not in call.id
        assert call["extra_content"] == {"google": {"thought_signature": fake.issued_signatures["get_weather"]}}
        assistant = first.choices[0].message.model_dump(exclude_none=True)
        await f.chat_async(
            [
                {"role": "user", "content": "Weather in Oslo?"},
                assistant,
                {"role": "tool", "tool_call_id": call.id, "content": "-3"},
            ]
        )
    part = fake.requests[-1].body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == fake.issued_signatures["get_weather"]
    assert fake.requests[-1].body["contents"][2]["parts"][0]["functionResponse"]["response"] == {"result": -3}


@pytest.mark.anyio
async def test_missing_signature_is_a_bad_request_unless_a_fallback_is_configured() -> None:
    fake = FakeGemini()
    fake.issued_signatures["get_weather"] = "c2lnLXJlYWw="  # the model called it earlier
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with factory(fake, config(model="gemini-3-pro-preview"), config("second", model="gemini-3-pro-preview")) as f:
        with pytest.raises(BadRequestError, match="thought_signature"):
            await f.chat_async(history)
    assert len(fake.requests) == 1, "a bad request is not failed over"
    sentinel = config(model="gemini-3-pro-preview", missing_thought_signature="skip_thought_signature_validator")
    async with factory(fake, sentinel) as f:
        await f.chat_async(history)
    part = fake.requests[-1].body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "skip_thought_signature_validator"
    assert part["functionCall"] == {"name": "get_weather", "args": {}, "id": "call_1"}


# -- responses and streams ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_maps_text_thoughts_and_usage() -> None:
    fake = FakeGemini().add(Turn(text="42", thoughts="Six times seven.", usage=(83, 14, 104)))
    async with factory(fake, config(include_thoughts=True)) as f:
        result = await f.chat_async("Answer?", temperature=0.3, max_tokens=50)
    message = result.choices[0].message
    assert message.content == "42"
    assert message["reasoning_content"] == "Six times seven."
    assert result.model == "gemini-2.5-flash"
    assert result.usage is not None
    assert result.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 83,
        "completion_tokens": 118,
        "total_tokens": 201,
        "completion_tokens_details": {"reasoning_tokens": 104},
    }
    body = fake.requests[-1].body
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 50,
        "thinkingConfig": {"includeThoughts": True},
    }


@pytest.mark.anyio
async def test_stream_maps_thoughts_text_and_usage_chunk() -> None:
    fake = FakeGemini().add(Turn(text="Hello world", pieces=["Hello", " world"], thoughts="hmm", usage=(5, 3, 9)))
    async with factory(fake) as f:
        chunks = [c async for c in f.stream_async("Hi", stream_options={"include_usage": True})]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta["reasoning_content"] == "hmm"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, None, "stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (5, 12, 17)
    assert last.usage.completion_tokens_details == {"reasoning_tokens": 9}
    assert len({c.id for c in chunks}) == 1
    assert fake.requests[-1].path.endswith(":streamGenerateContent") and fake.requests[-1].query == {"alt": "sse"}


@pytest.mark.anyio
async def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    fake = FakeGemini().add(Turn(text="ok"))
    async with factory(fake) as f:
        chunks = [c async for c in f.stream_async("Hi")]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("gemini", "openai"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
     ("STOP", "stop"), ("MALFORMED_FUNCTION_CALL", "stop")],
)  # fmt: skip
async def test_finish_reasons(gemini: str, openai: str) -> None:
    fake = FakeGemini().add(Turn(text="partial", finish=gemini), Turn(text="partial", finish=gemini))
    async with factory(fake) as f:
        result = await f.chat_async("Hi")
        chunks = [c async for c in f.stream_async("Hi")]
    assert result.choices[0].finish_reason == openai
    assert chunks[-1].choices[0].finish_reason == openai


@pytest.mark.anyio
async def test_several_candidates_become_several_choices() -> None:
    fake = FakeGemini().add(Turn(text="same", candidates=2))
    async with factory(fake) as f:
        result = await f.chat_async("Hi", n=2)
    assert [(c.index, c.message.content) for c in result.choices] == [(0, "same"), (1, "same")]
    assert fake.requests[-1].body["generationConfig"]["candidateCount"] == 2


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_blocked_prompt_is_a_content_filter_error_without_failover(stream: bool) -> None:
    fake = FakeGemini()
    fake.default = Turn(block_reason="PROHIBITED_CONTENT")
    async with factory(fake, config(), config("second", key=OTHER_KEY)) as f:
        with pytest.raises(ContentFilterError, match="PROHIBITED_CONTENT") as info:
            if stream:
                [c async for c in f.stream_async("bad")]
            else:
                await f.chat_async("bad")
    assert info.value.code == "content_filter"
    assert len(fake.requests) == 1


# -- errors and failover -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_limit_uses_retry_delay_and_fails_over() -> None:
    fake = FakeGemini(keys=(VALID_KEY, OTHER_KEY)).add(GeminiError.rate_limit("7s"))
    async with factory(fake, config(), config("second", key=OTHER_KEY), num_retries=0) as f:
        result = await f.chat_async("Hi")
        status = {s.name: s for s in f.status()}
    assert result.choices[0].message.content == "Hello from the fake"
    assert result.deployment == "second"
    assert status["first"].state == "cooldown" and status["first"].until is not None
    assert [r.headers["x-goog-api-key"] for r in fake.requests] == [VALID_KEY, OTHER_KEY]


@pytest.mark.anyio
async def test_rate_limit_error_carries_retry_after() -> None:
    fake = FakeGemini().add(GeminiError.rate_limit("2.500s"))
    async with factory(fake, num_retries=0, max_cooldown_wait=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.5
    assert error.code == "RESOURCE_EXHAUSTED"


@pytest.mark.anyio
@pytest.mark.parametrize("error", [GeminiError.unavailable(), GeminiError.internal(), GeminiError.deadline()])
async def test_server_errors_fail_over(error: GeminiError) -> None:
    fake = FakeGemini().add(error)
    async with factory(fake, config(), config("second")) as f:
        result = await f.chat_async("Hi")
    assert result.deployment == "second"


@pytest.mark.anyio
@pytest.mark.parametrize("bad", ["invalid", "denied"])
async def test_bad_key_disables_the_deployment(bad: str) -> None:
    fake = FakeGemini(keys=(VALID_KEY,))
    if bad == "denied":
        fake.add(GeminiError.permission_denied())
        first = config()
    else:
        first = config(key="AIzaSy-revoked-key-0009")
    async with factory(fake, first, config("second")) as f:
        result = await f.chat_async("Hi")
        status = {s.name: s for s in f.status()}
    assert result.deployment == "second"
    assert status["first"].state == "disabled"
    assert "revoked-key" not in repr(status) and "revoked-key" not in str(status["first"].reason)


@pytest.mark.anyio
async def test_invalid_key_error_is_authentication_error_with_masked_key() -> None:
    fake = FakeGemini()
    async with factory(fake, config(key="AIzaSy-revoked-key-0009"), num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, AuthenticationError)
    assert error.status == 400 and error.code == "API_KEY_INVALID"
    assert "AIzaSy-revoked-key-0009" not in str(info.value)


@pytest.mark.anyio
async def test_invalid_argument_is_not_failed_over() -> None:
    fake = FakeGemini().add(GeminiError.invalid_argument("* GenerationConfig.temperature: out of range"))
    async with factory(fake, config(), config("second")) as f:
        with pytest.raises(BadRequestError) as info:
            await f.chat_async("Hi")
    assert type(info.value) is BadRequestError
    assert len(fake.requests) == 1


@pytest.mark.anyio
async def test_context_length_goes_to_the_fallback_model() -> None:
    fake = FakeGemini().add(GeminiError.context_too_long())
    configs = [
        config(),
        config("second"),
        ModelConfig(provider="gemini", model_name="big", model="gemini-2.5-pro", api_key=VALID_KEY, name="big"),
    ]
    async with factory(fake, *configs, fallbacks={"gemini": ["big"]}) as f:
        result = await f.chat_async("a very long prompt", model="gemini")
    assert result.deployment == "big"
    assert [r.path.split("/")[-1] for r in fake.requests] == [
        "gemini-2.5-flash:generateContent",
        "gemini-2.5-pro:generateContent",
    ]


@pytest.mark.anyio
async def test_context_length_error_type() -> None:
    fake = FakeGemini().add(GeminiError.context_too_long())
    async with factory(fake) as f:
        with pytest.raises(ContextLengthError):
            await f.chat_async("Hi")


@pytest.mark.anyio
async def test_error_inside_stream_before_content_fails_over() -> None:
    fake = FakeGemini().add(Turn(text="never", stream_error=GeminiError.unavailable(), error_after=0))
    async with factory(fake, config(), config("second")) as f:
        stream = f.stream_async("Hi")
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake"
    assert stream.deployment == "second"


@pytest.mark.anyio
async def test_rate_limit_inside_stream_before_content_is_typed() -> None:
    fake = FakeGemini().add(Turn(text="never", stream_error=GeminiError.rate_limit("7s"), error_after=0))
    async with factory(fake, num_retries=0, max_cooldown_wait=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            [c async for c in f.stream_async("Hi")]
    assert isinstance(info.value.last_error, RateLimitError)
    assert info.value.last_error.retry_after == 7


@pytest.mark.anyio
async def test_error_inside_stream_after_content_interrupts() -> None:
    fake = FakeGemini().add(
        Turn(text="abc", pieces=["a", "b", "c"], stream_error=GeminiError.internal(), error_after=2)
    )
    received: list[str] = []
    async with factory(fake, config(), config("second")) as f:
        with pytest.raises(StreamInterruptedError, match="internal error"):
            async for chunk in f.stream_async("Hi"):
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "ab"
    assert len(fake.requests) == 1


@pytest.mark.anyio
async def test_stream_cut_before_finish_is_an_error() -> None:
    async def cut(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b'data: {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]}\r\n\r\n'

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    f = LLMFactory([config()], transport=httpx.MockTransport(cut), registry=registry(), num_retries=0)
    async with f:
        with pytest.raises(StreamInterruptedError, match="before it finished"):
            [c async for c in f.stream_async("Hi")]


@pytest.mark.anyio
async def test_malformed_event_is_skipped() -> None:
    async def reply(request: httpx.Request) -> httpx.Response:
        body = (
            b"data: {not json\r\n\r\n"
            b'data: {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"},'
            b' "finishReason": "STOP"}]}\r\n\r\n'
        )
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with LLMFactory([config()], transport=httpx.MockTransport(reply), registry=registry()) as f:
        chunks = [c async for c in f.stream_async("Hi")]
    assert [c.choices[0].delta.content for c in chunks] == ["ok"]


# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEYS", f"{VALID_KEY},{OTHER_KEY}")
    monkeypatch.setenv("GEMINI_API_BASE", "https://gemini-proxy.example.test/v1beta")
    monkeypatch.setenv("GEMINI_MODEL", "gemini-2.5-flash")
    monkeypatch.setenv("GEMINI_INCLUDE_THOUGHTS", "true")
    fake = FakeGemini(keys=(VALID_KEY, OTHER_KEY))
    async with LLMFactory.create(transport=fake.transport, registry=registry(), strategy="round_robin") as f:
        assert len(f.deployments) == 2
        await f.chat_async("Hi")
        await f.chat_async("Hi")
    urls = [str(r.path) for r in fake.requests]
    assert urls == ["/v1beta/models/gemini-2.5-flash:generateContent"] * 2
    assert {r.headers["x-goog-api-key"] for r in fake.requests} == {VALID_KEY, OTHER_KEY}
    assert all(r.body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True} for r in fake.requests)


@pytest.mark.anyio
async def test_key_is_only_in_the_header() -> None:
    seen: list[httpx.Request] = []
    fake = FakeGemini()

    async def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return await fake(request)

    async with LLMFactory([config()], transport=httpx.MockTransport(spy), registry=registry()) as f:
        await f.chat_async("Hi")
        [c async for c in f.stream_async("Hi")]
    for request in seen:
        assert VALID_KEY not in str(request.url)
        assert request.headers["x-goog-api-key"] == VALID_KEY
        assert "authorization" not in request.headers
        assert str(request.url).startswith("https://generativelanguage.googleapis.com/v1beta/models/")


def test_yaml_configuration(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GEMINI_KEY", VALID_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n"
        "  - provider: gemini\n"
        "    model_name: gemini\n"
        "    model: gemini-2.5-pro\n"
        "    api_key: ${MY_GEMINI_KEY}\n"
        "    thinking_budget: 2048\n"
        "    safety_settings:\n"
        "      - {category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_ONLY_HIGH}\n"
    )
    fake = FakeGemini()
    with LLMFactory.create_from_config(path, transport=fake.transport, registry=registry()) as f:
        assert f.chat("Hi").choices[0].message.content == "Hello from the fake"
    body = fake.requests[-1].body
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048}
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
