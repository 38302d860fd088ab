"""The plugin through a real LLMFactory against the DashScope fake, over real sockets on both
HTTP transports (conftest's ``fake``); URL-host tests on ``httpx.MockTransport`` (``mock_fake``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    LLMFactoryError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)

from .conftest import COMPAT_BASE, NATIVE_BASE, make_factory, qwen_config
from .fake_dashscope import COMPAT_PATH, ERRORS, KEY, MULTIMODAL_PATH, TEXT_PATH, FakeDashScope, Turn

CALLS = [
    {"id": "call_a1", "name": "get_weather", "arguments": '{"city": "杭州"}'},
    {"id": "call_b2", "name": "get_weather", "arguments": '{"city": "上海"}'},
]


def unwrap(error: BaseException) -> BaseException:
    if isinstance(error, AllDeploymentsFailedError) and error.last_error is not None:
        return error.last_error
    return error


def assemble(chunks: list[Any]) -> dict[int, dict[str, str]]:
    """Tool calls assembled the way OpenAI clients do it: by index."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = tc.id or call["id"]
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return calls


# -- native: requests and replies -----------------------------------------------------------------


@pytest.mark.anyio
async def test_native_chat(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["Hi", " there"], input_tokens=5))
    async with make_factory(fake) as factory:
        result = await factory.chat_async("Hello", temperature=0.2)
    sent = fake.requests[0]
    assert sent.path == TEXT_PATH
    assert sent.headers["authorization"] == f"Bearer {KEY}" and "x-dashscope-sse" not in sent.headers
    assert sent.body["parameters"] == {"result_format": "message", "temperature": 0.2}
    assert result.id == f"chatcmpl-{sent.request_id}", "OpenAI's id shape around DashScope's request_id"
    assert result.choices[0].message.content == "Hi there"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (5, 2, 7)


@pytest.mark.anyio
@pytest.mark.parametrize("include_usage", [True, False])
async def test_native_stream_is_incremental_and_reports_usage_last(fake: FakeDashScope, include_usage: bool) -> None:
    fake.queue(Turn(pieces=["a", "b", "c"]))
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    async with make_factory(fake) as factory:
        chunks = [c async for c in factory.stream_async("Hi", **options)]
    sent = fake.requests[0]
    assert sent.headers["x-dashscope-sse"] == "enable" and sent.headers["accept"] == "text/event-stream"
    assert sent.body["parameters"]["incremental_output"] is True
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ["a", "b", "c"], "deltas, never the cumulative text"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert {c.id for c in chunks} == {f"chatcmpl-{sent.request_id}"}, "one id, stable across chunks"
    if include_usage:
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (8, 4, 12)
    else:
        assert all(c.usage is None for c in chunks)


@pytest.mark.anyio
async def test_incremental_output_false_in_extra_body_is_overridden(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["a", "b"]))
    async with make_factory(fake) as factory:
        text = [
            c.choices[0].delta.content
            async for c in factory.stream_async("Hi", extra_body={"incremental_output": False})
            if c.choices
        ]
    assert "".join(t or "" for t in text) == "ab"


@pytest.mark.anyio
async def test_reasoning_is_kept_in_chat_and_stream(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["4"], reasoning=["2+2", "..."]), Turn(pieces=["4"], reasoning=["2+2", "..."]))
    async with make_factory(fake) as factory:
        result = await factory.chat_async("2+2?", extra_body={"enable_thinking": True})
        chunks = [
            c async for c in factory.stream_async("2+2?", extra_body={"enable_thinking": True, "thinking_budget": 100})
        ]
    assert result.choices[0].message.get("reasoning_content") == "2+2..."
    assert result.usage is not None and result.usage.completion_tokens_details == {"reasoning_tokens": 2}
    reasoning = "".join(c.choices[0].delta.get("reasoning_content", "") for c in chunks if c.choices)
    assert reasoning == "2+2..."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "4"
    assert fake.requests[1].body["parameters"]["thinking_budget"] == 100
    assert fake.requests[0].body["parameters"]["enable_thinking"] is True


@pytest.mark.anyio
@pytest.mark.parametrize("index_zero", [False, True], ids=["indexed", "all-index-0"])
async def test_tool_call_stream_is_assembled(fake: FakeDashScope, index_zero: bool) -> None:
    fake.queue(Turn(pieces=[], tool_calls=CALLS, parallel_index_zero=index_zero, finish="stop"))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    async with make_factory(fake) as factory:
        chunks = [c async for c in factory.stream_async("Weather?", tools=tools, tool_choice="auto")]
    assert fake.requests[0].body["parameters"]["tools"] == tools
    assert assemble(chunks) == {i: c for i, c in enumerate(CALLS)}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"], "DashScope said stop; callers must see tool_calls"


@pytest.mark.anyio
async def test_tool_call_reply_says_tool_calls(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=[], tool_calls=CALLS[:1]))  # non-streamed: the fake says "stop"
    async with make_factory(fake) as factory:
        result = await factory.chat_async("Weather?")
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    assert [(t.id, t.function.name, t.function.arguments) for t in choice.message.tool_calls] == [
        ("call_a1", "get_weather", '{"city": "杭州"}')
    ]


@pytest.mark.anyio
async def test_several_choices(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["x"]), Turn(pieces=["x", "y"]))
    async with make_factory(fake) as factory:
        result = await factory.chat_async("Hi", n=2)
        chunks = [c async for c in factory.stream_async("Hi", n=2)]
    assert [c.index for c in result.choices] == [0, 1]
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "xy", 1: "xy"}


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "dashscope-us.aliyuncs.com"])
async def test_every_region_host(mock_fake: FakeDashScope, host: str) -> None:
    fake = mock_fake
    async with make_factory(fake, qwen_config(f"https://{host}/api/v1")) as factory:
        result = await factory.chat_async("Hi")
        [c async for c in factory.stream_async("Hi")]
    assert result.choices[0].message.content == "Hello from DashScope"
    assert {(r.host, r.path) for r in fake.requests} == {(host, TEXT_PATH)}


@pytest.mark.anyio
async def test_default_base_is_beijing_native(mock_fake: FakeDashScope) -> None:
    fake = mock_fake
    async with make_factory(fake, qwen_config(None)) as factory:
        await factory.chat_async("Hi")
        assert factory.status()[0].api_base == NATIVE_BASE
    assert (fake.requests[0].host, fake.requests[0].path) == ("dashscope.aliyuncs.com", TEXT_PATH)


@pytest.mark.anyio
async def test_vision_models_use_the_multimodal_path(fake: FakeDashScope) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]
    config = qwen_config(model_name="qwen-vl-max")
    async with make_factory(fake, config) as factory:
        result = await factory.chat_async(messages)
        chunks = [c async for c in factory.stream_async(messages)]
    assert [r.path for r in fake.requests] == [MULTIMODAL_PATH, MULTIMODAL_PATH]
    assert fake.requests[0].body["input"]["messages"][0]["content"] == [
        {"text": "What is it?"},
        {"image": "https://example.test/cat.png"},
    ]
    assert result.choices[0].message.content == "Hello from DashScope"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from DashScope"


@pytest.mark.anyio
async def test_workspace_and_configured_headers_are_sent(fake: FakeDashScope) -> None:
    config = qwen_config(workspace="ws-123", headers={"X-DashScope-DataInspection": '{"input":"disable"}'})
    async with make_factory(fake, config) as factory:
        await factory.chat_async("Hi")
    assert fake.requests[0].headers["x-dashscope-workspace"] == "ws-123"
    assert fake.requests[0].headers["x-dashscope-datainspection"] == '{"input":"disable"}'


# -- native: errors --------------------------------------------------------------------------------

ERROR_CLASSES = {
    "rate_limit": RateLimitError,
    "burst": RateLimitError,
    "quota": InsufficientQuotaError,
    "arrearage": InsufficientQuotaError,
    "auth": AuthenticationError,
    "access": AuthenticationError,
    "content_filter": ContentFilterError,
    "bad_request": BadRequestError,
    "context": ContextLengthError,
    "server": ServerError,
    "unavailable": ServerError,
}


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["http", "stream-http", "in-stream"])
@pytest.mark.parametrize("kind", sorted(ERROR_CLASSES))
async def test_errors_are_typed(fake: FakeDashScope, kind: str, where: str, base: str) -> None:
    if where == "in-stream":
        fake.queue(Turn(stream_error=ERRORS[kind], error_after=0))
    else:
        fake.queue(Turn(error=ERRORS[kind]))
    async with make_factory(fake, qwen_config(base)) as factory:
        with pytest.raises(LLMFactoryError) as info:
            if where == "http":
                await factory.chat_async("Hi")
            else:
                [c async for c in factory.stream_async("Hi")]
    error = unwrap(info.value)
    assert type(error) is ERROR_CLASSES[kind], f"{kind} became {type(error).__name__}"
    assert isinstance(error, ProviderError) and error.provider == "qwen"
    if not (base == COMPAT_BASE and where == "in-stream"):  # there the status is inferred from the code
        assert error.status == ERRORS[kind].status


@pytest.mark.anyio
async def test_a_wrong_key_disables_the_deployment_and_fails_over(fake: FakeDashScope) -> None:
    configs = [qwen_config(name="bad", api_key="sk-revoked-key-99999"), qwen_config(name="good")]
    async with make_factory(fake, *configs, strategy="first_available") as factory:
        result = await factory.chat_async("Hi")
        states = {s.name: s.state for s in factory.status()}
    assert result.choices[0].message.content == "Hello from DashScope"
    assert states == {"bad": "disabled", "good": "healthy"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "state"), [("quota", "disabled"), ("arrearage", "disabled"), ("rate_limit", "cooldown")]
)
async def test_quota_disables_the_key_and_rate_limit_cools_it(fake: FakeDashScope, kind: str, state: str) -> None:
    error = dataclasses.replace(ERRORS[kind], headers={"retry-after": "30"})
    fake.queue(Turn(error=error), Turn(pieces=["ok"]))
    configs = [qwen_config(name="first"), qwen_config(name="second")]
    async with make_factory(fake, *configs, strategy="first_available", cooldown=5.0) as factory:
        result = await factory.chat_async("Hi")
        states = {s.name: s.state for s in factory.status()}
    assert result.choices[0].message.content == "ok"
    assert states == {"first": state, "second": "healthy"}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["rate_limit", "quota", "server"])
async def test_error_event_before_content_fails_over(fake: FakeDashScope, kind: str) -> None:
    fake.queue(Turn(stream_error=ERRORS[kind], error_after=0), Turn(pieces=["ok"]))
    configs = [qwen_config(name="first"), qwen_config(name="second")]
    async with make_factory(fake, *configs, strategy="first_available") as factory:
        text = "".join([c.choices[0].delta.content or "" async for c in factory.stream_async("Hi") if c.choices])
        failures = {s.name: s.failures for s in factory.status()}
    assert text == "ok" and failures == {"first": 1, "second": 0}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["content_filter", "bad_request", "context"])
async def test_request_problems_are_not_failed_over(fake: FakeDashScope, kind: str) -> None:
    fake.queue(Turn(stream_error=ERRORS[kind], error_after=0), Turn(error=ERRORS[kind]))
    configs = [qwen_config(name="first"), qwen_config(name="second")]
    async with make_factory(fake, *configs, strategy="first_available") as factory:
        with pytest.raises(LLMFactoryError) as info:
            [c async for c in factory.stream_async("Hi")]
        assert isinstance(unwrap(info.value), ERROR_CLASSES[kind])
        with pytest.raises(LLMFactoryError):
            await factory.chat_async("Hi")
    assert len(fake.requests) == 2, "one request each, no failover"


@pytest.mark.anyio
async def test_error_after_content_ends_the_stream_with_an_error(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["a", "b", "c"], stream_error=ERRORS["content_filter"], error_after=2))
    seen: list[str] = []
    async with make_factory(fake) as factory:
        with pytest.raises(LLMFactoryError, match="inappropriate"):
            async for chunk in factory.stream_async("Hi"):
                seen += [chunk.choices[0].delta.content or ""] if chunk.choices else []
    assert "".join(seen) == "ab"


@pytest.mark.anyio
async def test_a_stream_cut_before_any_content_fails_over(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["a", "b"], cut_after=0), Turn(pieces=["a", "b"]))
    configs = [qwen_config(name="first"), qwen_config(name="second")]
    async with make_factory(fake, *configs, strategy="first_available") as factory:
        text = "".join([c.choices[0].delta.content or "" async for c in factory.stream_async("Hi") if c.choices])
        last_errors = {s.name: s.last_error for s in factory.status()}
    assert text == "ab"
    assert "UpstreamConnectionError" in str(last_errors["first"]) and last_errors["second"] is None


@pytest.mark.anyio
async def test_a_stream_cut_after_content_is_an_error_not_a_silent_end(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["a", "b"], cut_after=1))
    seen: list[str] = []
    async with make_factory(fake) as factory:
        with pytest.raises(StreamInterruptedError, match="before it finished"):
            async for chunk in factory.stream_async("Hi"):
                seen += [chunk.choices[0].delta.content or ""] if chunk.choices else []
    assert seen == ["a"]


@pytest.mark.anyio
async def test_the_key_never_appears_in_errors(fake: FakeDashScope) -> None:
    leaky = dataclasses.replace(ERRORS["auth"], message=f"Invalid API-key provided: {KEY}")
    fake.queue(Turn(error=leaky))
    async with make_factory(fake) as factory:
        with pytest.raises(LLMFactoryError) as info:
            await factory.chat_async("Hi")
    assert KEY not in str(info.value) and KEY not in repr(unwrap(info.value))
    assert KEY[-4:] in str(unwrap(info.value))


# -- compatible mode -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_compatible_mode_chat_and_stream(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["a", "b"], reasoning=["hm"]), Turn(pieces=["a", "b"], reasoning=["hm"]))
    async with make_factory(fake, qwen_config(COMPAT_BASE)) as factory:
        result = await factory.chat_async("Hi", extra_body={"enable_thinking": True})
        chunks = [
            c
            async for c in factory.stream_async(
                "Hi", stream_options={"include_usage": True}, extra_body={"enable_thinking": True}
            )
        ]
    assert [r.path for r in fake.requests] == [COMPAT_PATH, COMPAT_PATH]
    assert fake.requests[0].body["enable_thinking"] is True and fake.requests[0].body["model"] == "qwen-turbo"
    assert fake.requests[1].body["stream"] is True
    assert result.choices[0].message.content == "ab"
    assert result.choices[0].message.get("reasoning_content") == "hm"
    assert "".join(c.choices[0].delta.get("reasoning_content", "") for c in chunks if c.choices) == "hm"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


@pytest.mark.anyio
async def test_compatible_mode_tool_calls(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=[], tool_calls=CALLS))
    async with make_factory(fake, qwen_config(COMPAT_BASE)) as factory:
        chunks = [c async for c in factory.stream_async("Weather?")]
    assert assemble(chunks) == {i: c for i, c in enumerate(CALLS)}


@pytest.mark.anyio
async def test_proxy_url_with_forced_mode(mock_fake: FakeDashScope) -> None:
    fake = mock_fake
    # A gateway path that says neither API: mode decides. The fake only knows DashScope's paths,
    # so point the proxy base at the compatible path's parent through mode=compatible.
    config = qwen_config("https://gateway.example.test/compatible-mode/v1", mode="compatible")
    async with make_factory(fake, config) as factory:
        await factory.chat_async("Hi")
    assert fake.requests[0].path == COMPAT_PATH


@pytest.mark.anyio
async def test_forced_mode_without_api_base_uses_beijing(mock_fake: FakeDashScope) -> None:
    fake = mock_fake
    async with make_factory(fake, qwen_config(None, mode="compatible"), qwen_config(None, mode="native")) as factory:
        await factory.chat_async("Hi", load_balance_strategy="first_available")
        await factory.chat_async("Hi", load_balance_strategy="round_robin")
        await factory.chat_async("Hi", load_balance_strategy="round_robin")
    assert {(r.host, r.path) for r in fake.requests} == {
        ("dashscope.aliyuncs.com", COMPAT_PATH),
        ("dashscope.aliyuncs.com", TEXT_PATH),
    }


# -- configuration ---------------------------------------------------------------------------------


def test_an_api_base_of_neither_kind_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"/api/v1.*/compatible-mode/v1"):
        make_factory(FakeDashScope(), qwen_config("https://dashscope.aliyuncs.com/v1"))


def test_a_key_is_required() -> None:
    config = qwen_config(None).model_copy(update={"api_key": None})
    with pytest.raises(ConfigurationError, match="api_key"):
        make_factory(FakeDashScope(), config)


def test_unknown_options_name_themselves() -> None:
    with pytest.raises(ConfigurationError, match="enable_serch"):
        make_factory(FakeDashScope(), qwen_config(enable_serch=True))


# -- Partial Mode: prefill and stream continuation ---------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("base", [NATIVE_BASE, COMPAT_BASE])
async def test_a_final_assistant_message_is_sent_in_partial_mode(fake: FakeDashScope, base: str) -> None:
    history = [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "one two"}]
    async with make_factory(fake, qwen_config(base)) as factory:
        await factory.chat_async(history)
        await factory.chat_async([*history[:1], {**history[1], "partial": False}])  # the caller's choice stands
        await factory.chat_async(history[:1])
    sent = [r.body["messages"] if base == COMPAT_BASE else r.body["input"]["messages"] for r in fake.requests]
    assert sent[0][-1] == {"role": "assistant", "content": "one two", "partial": True}
    assert history[1] == {"role": "assistant", "content": "one two"}  # the caller's message is not changed
    assert sent[1][-1]["partial"] is False
    assert all("partial" not in m for m in sent[2])


@pytest.mark.anyio
async def test_qwen_continues_a_broken_stream_from_the_text_already_sent(fake: FakeDashScope) -> None:
    fake.queue(Turn(pieces=["one ", "two "], cut_after=2), Turn(pieces=["three"]))
    configs = [qwen_config(name="primary"), qwen_config(name="backup")]
    async with make_factory(fake, *configs, strategy="first_available", stream_continuation=True) as factory:
        text = "".join([c.choices[0].delta.content or "" async for c in factory.stream_async("Count") if c.choices])
    assert text == "one two three"
    continued = fake.requests[1].body["input"]["messages"]
    assert continued[-1] == {"role": "assistant", "content": "one two ", "partial": True}
