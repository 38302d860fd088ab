"""The DeepSeek plugin through LLMFactory against the fake: reasoning content, usage, keep-alives,
the reasoning round trip, and DeepSeek's failure modes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ChatCompletionChunk,
    InsufficientQuotaError,
    LLMFactory,
    ModelConfig,
    ProviderType,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llm_factory_core.testing import serve_handler
from llm_factory_deepseek import DeepSeekProvider

from .fake_deepseek import ROUND_TRIP_MESSAGE, FakeDeepSeek

GOOD = "sk-deepseek-good-key-0001"
SPARE = "sk-deepseek-spare-key-0002"
BROKE = "sk-deepseek-broke-key-0003"


def config(model: str = "deepseek-reasoner", key: str = GOOD, **kw: Any) -> ModelConfig:
    kw.setdefault("name", key[-4:])
    return ModelConfig(provider=ProviderType.DEEPSEEK, model_name=model, api_key=key, **kw)


@contextlib.asynccontextmanager
async def factory(fake: FakeDeepSeek, transport: str, *configs: ModelConfig, **kw: Any) -> AsyncIterator[LLMFactory]:
    """A factory whose deployments talk to ``fake`` served on 127.0.0.1, over ``transport``."""
    kw.setdefault("cooldown", 5.0)
    kw.setdefault("retry_backoff", 0.0)
    kw.setdefault("strategy", "first_available")
    with serve_handler(fake) as base:
        served = [c.model_copy(update={"api_base": base}) for c in (configs or (config(),))]
        async with LLMFactory(served, transport=transport, **kw) as f:
            yield f


def status(f: LLMFactory) -> dict[str, tuple[str, str | None]]:
    return {s.name: (s.state, s.reason) for s in f.status()}


# -- reasoning content and usage --------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_keeps_reasoning_content_and_deepseek_usage(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,)).add(keepalives=4, reasoning="9.11 < 9.8", text="9.8", cache_hit=2)
    async with factory(fake, http_transport) as f:
        reply = await f.chat_async("Which is greater, 9.11 or 9.8?")
    message = reply.choices[0].message
    assert message.content == "9.8"
    assert message.get("reasoning_content") == "9.11 < 9.8"
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None
    assert usage.get("prompt_cache_hit_tokens") == 2
    assert usage.get("prompt_cache_hit_tokens") + usage.get("prompt_cache_miss_tokens") == usage.prompt_tokens
    assert usage.completion_tokens_details == {"reasoning_tokens": 3}
    wire = reply.model_dump(exclude_none=True)
    assert wire["choices"][0]["message"]["reasoning_content"] == "9.11 < 9.8"
    assert wire["usage"]["prompt_cache_miss_tokens"] == usage.prompt_tokens - 2


@pytest.mark.anyio
async def test_stream_async_shows_reasoning_deltas_and_keeps_them_in_the_wire_form(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,)).add(keepalives=3, reasoning="Hmm, the user greets", text="Hello there")
    async with factory(fake, http_transport) as f:
        chunks = [c async for c in f.stream_async("Hi")]
    reasoning = "".join(c.choices[0].delta.get("reasoning_content", "") for c in chunks if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (reasoning, text) == ("Hmm, the user greets", "Hello there")
    # What the server forwards: each chunk's model_dump(exclude_none=True).
    dumped = [c.model_dump(exclude_none=True) for c in chunks]
    assert [d["choices"][0]["delta"].get("reasoning_content") for d in dumped if d["choices"]][1:4] == [
        "Hmm, ",
        "the ",
        "user ",
    ]
    assert all(d["object"] == "chat.completion.chunk" for d in dumped)
    # Usage rides on DeepSeek's finish chunk, with its own fields intact.
    usage = dumped[-1]["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 4}
    assert usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]
    # Keep-alives produced no chunks: role chunk + 4 reasoning + 2 text + finish.
    assert len(chunks) == 8


def test_sync_stream_shows_reasoning_too(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,)).add(reasoning="think", text="done")
    with (
        serve_handler(fake) as base,
        LLMFactory([config(api_base=base)], transport=http_transport) as f,
        f.stream("Hi") as stream,
    ):
        chunks: list[ChatCompletionChunk] = list(stream)
    assert "".join(c.choices[0].delta.get("reasoning_content", "") for c in chunks) == "think"


# -- the reasoning round trip -----------------------------------------------------------------------

CALL_ID = f"call_00_{uuid.uuid4().hex[:10]}"  # the reasoning memory is per process: ids unique to this module
CALL = [{"id": CALL_ID, "type": "function", "function": {"name": "weather", "arguments": "{}"}}]
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]


@pytest.mark.anyio
async def test_a_tool_loop_keeps_its_reasoning_and_plain_turns_drop_theirs(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,))
    fake.add(reasoning="greet", text="Hello")
    fake.add(reasoning="need the weather tool", text="", tool_calls=CALL, finish_reason="tool_calls")
    fake.add(reasoning="tool said sunny", text="Sunny")
    async with factory(fake, http_transport) as f:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Hi"}]
        for question in (None, "Weather?", None):
            if question:
                messages.append({"role": "user", "content": question})
            reply = await f.chat_async(messages, tools=TOOLS)
            messages.append(reply.choices[0].message.model_dump(exclude_none=True))
            if reply.choices[0].finish_reason == "tool_calls":
                messages.append({"role": "tool", "tool_call_id": CALL_ID, "content": "sunny"})
        messages.append({"role": "user", "content": "Thanks"})
        await f.chat_async(messages, tools=TOOLS)  # the fake answers 400 if the loop lost its reasoning
    sent = fake.bodies()[-1]["messages"]
    assert [m.get("reasoning_content") for m in sent] == [
        None,
        None,  # plain turn: dropped (ignored by DeepSeek, rejected by the original reasoner)
        None,
        "need the weather tool",
        None,
        "tool said sunny",
        None,
    ]


@pytest.mark.anyio
async def test_stripping_a_tool_loops_reasoning_is_a_400_without_failover(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD, SPARE))
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "use the tool", "tool_calls": CALL},
        {"role": "tool", "tool_call_id": CALL_ID, "content": "sunny"},
    ]
    configs = [config(reasoning_history="strip"), config(key=SPARE, reasoning_history="strip")]
    async with factory(fake, http_transport, *configs) as f:
        with pytest.raises(BadRequestError, match="must be passed back"):
            await f.chat_async(history, tools=TOOLS)
    assert len(fake.requests) == 1
    assert ROUND_TRIP_MESSAGE.startswith("The `reasoning_content`")


@pytest.mark.anyio
@pytest.mark.parametrize(("policy", "ok"), [("auto", True), ("keep", False)])
async def test_the_original_reasoner_gets_no_reasoning_back(policy: str, ok: bool, http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,), legacy_reasoner=True)
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "reasoning_content": "greet"},
        {"role": "user", "content": "How are you?"},
    ]
    async with factory(fake, http_transport, config(reasoning_history=policy)) as f:
        if ok:
            assert (await f.chat_async(history)).choices[0].message.content
        else:
            with pytest.raises(BadRequestError, match="not allowed"):
                await f.chat_async(history)


# -- failure modes ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_bad_key_is_disabled_and_the_next_key_answers(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(SPARE,))
    async with factory(fake, http_transport, config(key=GOOD), config(key=SPARE)) as f:
        reply = await f.chat_async("Hi")
        assert reply.deployment == SPARE[-4:]
        state, reason = status(f)[GOOD[-4:]]
    assert state == "disabled" and reason is not None and "AuthenticationError" in reason
    assert GOOD not in reason


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_insufficient_balance_disables_that_key_with_the_reason(stream: bool, http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,), broke=(BROKE,))
    async with factory(fake, http_transport, config(key=BROKE), config(key=GOOD)) as f:
        if stream:
            text = "".join([c.choices[0].delta.content or "" async for c in f.stream_async("Hi") if c.choices])
        else:
            text = (await f.chat_async("Hi")).choices[0].message.content or ""
        assert text == "Hello from DeepSeek"
        state, reason = status(f)[BROKE[-4:]]
        assert state == "disabled"
        assert reason == "InsufficientQuotaError: Insufficient Balance"
        # A disabled key is not tried again.
        await f.chat_async("Again")
    assert [r.headers["authorization"][-4:] for r in fake.requests] == [BROKE[-4:], GOOD[-4:], GOOD[-4:]]


@pytest.mark.anyio
async def test_insufficient_balance_is_a_typed_error(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,), broke=(BROKE,))
    async with factory(fake, http_transport, config(key=BROKE), num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, InsufficientQuotaError) and isinstance(error, AuthenticationError)
    assert error.status == 402 and error.provider == "deepseek"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "error_cls"), [("rate_limit", RateLimitError), ("server", ServerError), ("busy", ServerError)]
)
async def test_busy_upstream_cools_down_and_fails_over(
    kind: str, error_cls: type[Exception], http_transport: str
) -> None:
    fake = FakeDeepSeek(keys=(GOOD, SPARE)).add(error=kind)
    async with factory(fake, http_transport, config(key=GOOD), config(key=SPARE)) as f:
        reply = await f.chat_async("Hi")
        assert reply.deployment == SPARE[-4:]
        state, reason = status(f)[GOOD[-4:]]
    assert state == "cooldown" and reason is not None and reason.startswith(error_cls.__name__)


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "status_code"), [("bad_request", 400), ("invalid", 422)])
async def test_bad_requests_are_not_failed_over(kind: str, status_code: int, http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD, SPARE)).add(error=kind)
    async with factory(fake, http_transport, config(key=GOOD), config(key=SPARE)) as f:
        with pytest.raises(BadRequestError) as info:
            await f.chat_async("Hi")
        assert status(f)[GOOD[-4:]][0] == "healthy"
    assert info.value.status == status_code
    assert len(fake.requests) == 1


@pytest.mark.anyio
async def test_insufficient_system_resource_in_a_reply_fails_over(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD, SPARE)).add(text="partial", finish_reason="insufficient_system_resource")
    async with factory(fake, http_transport, config("deepseek-chat"), config("deepseek-chat", key=SPARE)) as f:
        reply = await f.chat_async("Hi")
        state, reason = status(f)[GOOD[-4:]]
    assert reply.choices[0].finish_reason == "stop" and reply.deployment == SPARE[-4:]
    assert state == "cooldown" and reason is not None and reason.startswith("ServerError")


@pytest.mark.anyio
async def test_insufficient_system_resource_is_a_retryable_server_error(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,)).add(finish_reason="insufficient_system_resource")
    async with factory(fake, http_transport, config("deepseek-chat"), num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, ServerError) and error.retryable
    assert error.code == "insufficient_system_resource"


@pytest.mark.anyio
async def test_insufficient_system_resource_before_the_first_token_fails_the_stream_over(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD, SPARE))
    fake.add(text="", pieces=[], finish_reason="insufficient_system_resource", keepalives=2)
    async with factory(fake, http_transport, config("deepseek-chat"), config("deepseek-chat", key=SPARE)) as f:
        stream = f.stream_async("Hi")
        chunks = [c async for c in stream]
    assert stream.deployment == SPARE[-4:]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from DeepSeek"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


@pytest.mark.anyio
async def test_insufficient_system_resource_after_the_first_token_ends_the_stream_with_an_error(
    http_transport: str,
) -> None:
    fake = FakeDeepSeek(keys=(GOOD, SPARE)).add(text="half an answer", finish_reason="insufficient_system_resource")
    seen: list[ChatCompletionChunk] = []
    async with factory(fake, http_transport, config("deepseek-chat"), config("deepseek-chat", key=SPARE)) as f:
        with pytest.raises(StreamInterruptedError, match="insufficient system resources"):
            async for chunk in f.stream_async("Hi"):
                seen.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "half an answer"
    assert all(c.choices[0].finish_reason is None for c in seen)
    assert len(fake.requests) == 1


@pytest.mark.anyio
async def test_an_error_object_after_keep_alive_lines_is_a_typed_error(http_transport: str) -> None:
    """Once a busy DeepSeek has sent 200 and blank lines, a failure can only come in the body."""
    body = b'\n\n\n{"error":{"message":"Server overloaded","type":"server_error","code":"503"}}'

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    with serve_handler(busy) as base:
        async with LLMFactory([config(api_base=base)], transport=http_transport, num_retries=0) as f:
            with pytest.raises(AllDeploymentsFailedError) as info:
                await f.chat_async("Hi")
    error = info.value.last_error
    assert isinstance(error, ServerError) and error.message == "Server overloaded"


# -- configuration ------------------------------------------------------------------------------------


def test_provider_identity() -> None:
    f = LLMFactory([config()])
    try:
        deployment = f.deployments[0]
        assert deployment.provider_cls is DeepSeekProvider
        assert f.status()[0].api_base == "https://api.deepseek.com"
        assert f.models() == [{"id": "deepseek-reasoner", "owned_by": "deepseek"}]
    finally:
        f.close()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"api_key": None}, "needs api_key"), ({"reasoning_history": "sometimes"}, "reasoning_history")],
)
def test_bad_settings_are_clear_errors(overrides: dict[str, Any], match: str) -> None:
    from llm_factory_core import ConfigurationError

    data = {"provider": "deepseek", "model_name": "deepseek-chat", "api_key": GOOD, **overrides}
    with pytest.raises(ConfigurationError, match=match):
        LLMFactory([ModelConfig.model_validate(data)])


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["extra_body", "keyword"])
async def test_thinking_enabled_in_the_request_keeps_the_tool_loops_reasoning(how: str, http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(GOOD,))
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "use the tool", "tool_calls": CALL},
        {"role": "tool", "tool_call_id": CALL_ID, "content": "sunny"},
    ]
    thinking = {"thinking": {"type": "enabled"}}
    params: dict[str, Any] = {"extra_body": thinking} if how == "extra_body" else thinking
    async with factory(fake, http_transport, config("deepseek-chat")) as f:
        reply = await f.chat_async(history, tools=TOOLS, **params)
        plain = await f.chat_async(history, tools=TOOLS)  # deepseek-chat does not think by default
    assert reply.choices[0].message.reasoning_content == "Let me think."  # type: ignore[attr-defined]
    assert plain.choices[0].message.get("reasoning_content") is None
    sent = fake.bodies()
    assert sent[0]["thinking"] == {"type": "enabled"}
    assert sent[0]["messages"][1]["reasoning_content"] == "use the tool"
    assert "reasoning_content" not in sent[1]["messages"][1]
