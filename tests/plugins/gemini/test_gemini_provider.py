"""The Gemini plugin through ``LLMFactory`` against the fake on a real socket, on each HTTP
transport: OpenAI shapes out, typed errors, failover, the streaming contract, botched tool turns,
configuration. (Tool loops and signatures: test_gemini_signatures.py; thinking, model rules and
extras: test_gemini_thinking.py; Vertex: test_gemini_vertex.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    ContextLengthError,
    LLMFactory,
    ModelConfig,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llm_factory_core.testing import serve_handler

from .fake_gemini import VALID_KEY, GeminiError, Turn
from .helpers import OTHER_KEY, TOOLS, Env, registry

# -- responses and streams ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_maps_text_thoughts_and_usage(env: Env) -> None:
    env.fake.add(Turn(text="42", thoughts="Six times seven.", usage=(83, 14, 104)))
    async with env.factory(env.config(include_thoughts=True)) as f:
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
    body = env.fake.requests[-1].body
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 50,
        "thinkingConfig": {"includeThoughts": True},
    }


@pytest.mark.anyio
async def test_stream_maps_thoughts_text_and_usage_chunk(env: Env) -> None:
    env.fake.add(Turn(text="Hello world", pieces=["Hello", " world"], thoughts="hmm", usage=(5, 3, 9)))
    async with env.factory() as f:
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
    assert env.fake.requests[-1].path.endswith(":streamGenerateContent") and env.fake.requests[-1].query == {
        "alt": "sse"
    }


@pytest.mark.anyio
async def test_stream_without_include_usage_has_no_usage_chunk(env: Env) -> None:
    env.fake.add(Turn(text="ok"))
    async with env.factory() as f:
        chunks = [c async for c in f.stream_async("Hi")]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("gemini", "openai"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
     ("STOP", "stop"), ("MALFORMED_FUNCTION_CALL", "stop")],
)  # fmt: skip
async def test_finish_reasons(env: Env, gemini: str, openai: str) -> None:
    env.fake.add(Turn(text="partial", finish=gemini), Turn(text="partial", finish=gemini))
    async with env.factory() as f:
        result = await f.chat_async("Hi")
        chunks = [c async for c in f.stream_async("Hi")]
    assert result.choices[0].finish_reason == openai
    assert chunks[-1].choices[0].finish_reason == openai


@pytest.mark.anyio
async def test_several_candidates_become_several_choices(env: Env) -> None:
    env.fake.add(Turn(text="same", candidates=2))
    async with env.factory() as f:
        result = await f.chat_async("Hi", n=2)
    assert [(c.index, c.message.content) for c in result.choices] == [(0, "same"), (1, "same")]
    assert env.fake.requests[-1].body["generationConfig"]["candidateCount"] == 2


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_blocked_prompt_is_a_content_filter_error_without_failover(env: Env, stream: bool) -> None:
    env.fake.default = Turn(block_reason="PROHIBITED_CONTENT")
    async with env.factory(env.config(), env.config("second", key=OTHER_KEY)) as f:
        with pytest.raises(ContentFilterError, match="PROHIBITED_CONTENT") as info:
            if stream:
                [c async for c in f.stream_async("bad")]
            else:
                await f.chat_async("bad")
    assert info.value.code == "content_filter"
    assert len(env.fake.requests) == 1


# -- errors and failover -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_limit_uses_retry_delay_and_fails_over(env: Env) -> None:
    env.fake.keys.add(OTHER_KEY)
    env.fake.add(GeminiError.rate_limit("7s"))
    async with env.factory(env.config(), env.config("second", key=OTHER_KEY), num_retries=0) as f:
        result = await f.chat_async("Hi")
        status = {s.name: s for s in f.status()}
    assert result.choices[0].message.content == "Hello from the fake"
    assert result.deployment == "second"
    assert status["first"].state == "cooldown" and status["first"].until is not None
    assert [r.headers["x-goog-api-key"] for r in env.fake.requests] == [VALID_KEY, OTHER_KEY]


@pytest.mark.anyio
async def test_rate_limit_error_carries_retry_after(env: Env) -> None:
    env.fake.add(GeminiError.rate_limit("2.500s"))
    async with env.factory(num_retries=0, max_cooldown_wait=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.5
    assert error.code == "RESOURCE_EXHAUSTED"


@pytest.mark.anyio
@pytest.mark.parametrize("error", [GeminiError.unavailable(), GeminiError.internal(), GeminiError.deadline()])
async def test_server_errors_fail_over(env: Env, error: GeminiError) -> None:
    env.fake.add(error)
    async with env.factory(env.config(), env.config("second")) as f:
        result = await f.chat_async("Hi")
    assert result.deployment == "second"


@pytest.mark.anyio
@pytest.mark.parametrize("bad", ["invalid", "denied"])
async def test_bad_key_disables_the_deployment(env: Env, bad: str) -> None:
    if bad == "denied":
        env.fake.add(GeminiError.permission_denied())
        first = env.config()
    else:
        first = env.config(key="AIzaSy-revoked-key-0009")
    async with env.factory(first, env.config("second")) as f:
        result = await f.chat_async("Hi")
        status = {s.name: s for s in f.status()}
    assert result.deployment == "second"
    assert status["first"].state == "disabled"
    assert "revoked-key" not in repr(status) and "revoked-key" not in str(status["first"].reason)


@pytest.mark.anyio
async def test_invalid_key_error_is_authentication_error_with_masked_key(env: Env) -> None:
    async with env.factory(env.config(key="AIzaSy-revoked-key-0009"), num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, AuthenticationError)
    assert error.status == 400 and error.code == "API_KEY_INVALID"
    assert "AIzaSy-revoked-key-0009" not in str(info.value)


@pytest.mark.anyio
async def test_invalid_argument_is_not_failed_over(env: Env) -> None:
    env.fake.add(GeminiError.invalid_argument("* GenerationConfig.temperature: out of range"))
    async with env.factory(env.config(), env.config("second")) as f:
        with pytest.raises(BadRequestError) as info:
            await f.chat_async("Hi")
    assert type(info.value) is BadRequestError
    assert len(env.fake.requests) == 1


@pytest.mark.anyio
async def test_context_length_goes_to_the_fallback_model(env: Env) -> None:
    env.fake.add(GeminiError.context_too_long())
    configs = [
        env.config(),
        env.config("second"),
        ModelConfig(
            provider="gemini",
            model_name="big",
            model="gemini-2.5-pro",
            api_key=VALID_KEY,
            name="big",
            api_base=env.base_url,
        ),
    ]
    async with env.factory(*configs, fallbacks={"gemini": ["big"]}) as f:
        result = await f.chat_async("a very long prompt", model="gemini")
    assert result.deployment == "big"
    assert [r.path.split("/")[-1] for r in env.fake.requests] == [
        "gemini-2.5-flash:generateContent",
        "gemini-2.5-pro:generateContent",
    ]


@pytest.mark.anyio
async def test_context_length_error_type(env: Env) -> None:
    env.fake.add(GeminiError.context_too_long())
    async with env.factory() as f:
        with pytest.raises(ContextLengthError):
            await f.chat_async("Hi")


@pytest.mark.anyio
async def test_error_inside_stream_before_content_fails_over(env: Env) -> None:
    env.fake.add(Turn(text="never", stream_error=GeminiError.unavailable(), error_after=0))
    async with env.factory(env.config(), env.config("second")) as f:
        stream = f.stream_async("Hi")
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake"
    assert stream.deployment == "second"


@pytest.mark.anyio
async def test_rate_limit_inside_stream_before_content_is_typed(env: Env) -> None:
    env.fake.add(Turn(text="never", stream_error=GeminiError.rate_limit("7s"), error_after=0))
    async with env.factory(num_retries=0, max_cooldown_wait=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            [c async for c in f.stream_async("Hi")]
    assert isinstance(info.value.last_error, RateLimitError)
    assert info.value.last_error.retry_after == 7


@pytest.mark.anyio
async def test_error_inside_stream_after_content_interrupts(env: Env) -> None:
    env.fake.add(Turn(text="abc", pieces=["a", "b", "c"], stream_error=GeminiError.internal(), error_after=2))
    received: list[str] = []
    async with env.factory(env.config(), env.config("second")) as f:
        with pytest.raises(StreamInterruptedError, match="internal error"):
            async for chunk in f.stream_async("Hi"):
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "ab"
    assert len(env.fake.requests) == 1


@pytest.mark.anyio
async def test_stream_cut_before_finish_is_an_error(env: Env) -> None:
    async def cut(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b'data: {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]}\r\n\r\n'

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    with serve_handler(cut) as url:
        async with env.factory(env.config(api_base=url), num_retries=0) as f:
            with pytest.raises(StreamInterruptedError, match="before it finished"):
                [c async for c in f.stream_async("Hi")]


@pytest.mark.anyio
async def test_malformed_event_is_skipped(env: Env) -> None:
    async def reply(request: httpx.Request) -> httpx.Response:
        body = (
            b"data: {not json\r\n\r\n"
            b'data: {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"},'
            b' "finishReason": "STOP"}]}\r\n\r\n'
        )
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with serve_handler(reply) as url:
        async with env.factory(env.config(api_base=url)) as f:
            chunks = [c async for c in f.stream_async("Hi")]
    assert [c.choices[0].delta.content for c in chunks] == ["ok"]


@pytest.mark.anyio
@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_empty_botched_tool_turn_fails_over(
    env: Env, reason: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an empty ``stop``: a retryable error before anything reached the caller, so the next
    deployment answers."""
    env.fake.add(Turn(finish=reason, finish_message="Malformed function call: print(x"))
    async with env.factory(env.config(), env.config("second")) as f:
        if stream:
            s = f.stream_async("Hi", tools=TOOLS)
            text = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
            deployment = s.deployment
        else:
            result = await f.chat_async("Hi", tools=TOOLS)
            text, deployment = result.choices[0].message.content or "", result.deployment
    assert (text, deployment) == ("Hello from the fake", "second")
    assert f"Gemini ended the turn with {reason}" in caplog.text


@pytest.mark.anyio
async def test_an_empty_botched_tool_turn_is_a_server_error(env: Env) -> None:
    env.fake.add(Turn(finish="MALFORMED_FUNCTION_CALL", finish_message="Malformed function call: f(("))
    async with env.factory(num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi", tools=TOOLS)
    error = info.value.last_error
    assert isinstance(error, ServerError) and error.retryable
    assert error.code == "malformed_function_call"
    assert "MALFORMED_FUNCTION_CALL" in str(error) and "Malformed function call: f((" in str(error)


# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_configuration_from_the_environment(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEYS", f"{VALID_KEY},{OTHER_KEY}")
    monkeypatch.setenv("GEMINI_API_BASE", env.base_url + "/v1beta")
    monkeypatch.setenv("GEMINI_MODEL", "gemini-2.5-flash")
    monkeypatch.setenv("GEMINI_INCLUDE_THOUGHTS", "true")
    env.fake.keys.add(OTHER_KEY)
    async with LLMFactory.create(transport=env.transport, registry=registry(), strategy="round_robin") as f:
        assert len(f.deployments) == 2
        await f.chat_async("Hi")
        await f.chat_async("Hi")
    urls = [str(r.path) for r in env.fake.requests]
    assert urls == ["/v1beta/models/gemini-2.5-flash:generateContent"] * 2
    assert {r.headers["x-goog-api-key"] for r in env.fake.requests} == {VALID_KEY, OTHER_KEY}
    assert all(r.body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True} for r in env.fake.requests)


@pytest.mark.anyio
async def test_key_is_only_in_the_header(env: Env) -> None:
    async with env.factory() as f:
        await f.chat_async("Hi")
        [c async for c in f.stream_async("Hi")]
    for request in env.fake.requests:
        assert VALID_KEY not in request.path and "key" not in request.query
        assert request.headers["x-goog-api-key"] == VALID_KEY
        assert "authorization" not in request.headers


def test_yaml_configuration(env: Env, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GEMINI_KEY", VALID_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n"
        "  - provider: gemini\n"
        "    model_name: gemini\n"
        "    model: gemini-2.5-pro\n"
        "    api_key: ${MY_GEMINI_KEY}\n"
        f"    api_base: {env.base_url}\n"
        "    thinking_budget: 2048\n"
        "    thought_signature_in_id: true\n"  # deprecated, still accepted
        "    safety_settings:\n"
        "      - {category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_ONLY_HIGH}\n"
    )
    with LLMFactory.create_from_config(path, transport=env.transport, registry=registry()) as f:
        assert f.chat("Hi").choices[0].message.content == "Hello from the fake"
    body = env.fake.requests[-1].body
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048}
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"thinking_level": "low", "thinking_budget": 1024}, "not both"),
        ({"model": "gemini-2.5-flash", "thinking_level": "low"}, "does not take thinking_level"),
        ({"model": "gemini-3.1-pro-preview", "thinking_level": "minimal"}, "low, medium, high"),
        ({"model": "gemini-2.5-pro", "thinking_budget": 0}, "cannot turn thinking off.*at least 128"),
        ({"model": "gemini-3.1-pro-preview", "thinking_budget": 0}, "cannot turn thinking off.*thinking_level low"),
        ({"access_token": "ya29.x"}, "vertex_project"),
        ({"vertex_project": "p", "use_adc": True, "access_token": "ya29.x"}, "only one of"),
    ],
)
def test_configuration_mistakes_are_named(settings: dict[str, Any], match: str) -> None:
    settings = {"model": "gemini-3-flash-preview", "api_key": VALID_KEY, **settings}
    with pytest.raises(ConfigurationError, match=match):
        LLMFactory(
            ModelConfig(provider="gemini", model_name="g", api_base="http://127.0.0.1:9", **settings),
            registry=registry(),
        )
