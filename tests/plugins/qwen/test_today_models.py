"""Today's Qwen models through a real LLMFactory, over real sockets on both HTTP transports and
both DashScope APIs, against the fake's model rules (thinking by default, stream-only models,
``tool_choice``), plus stream error frames, ids, extras, foreign fields and long histories."""

from __future__ import annotations

import time
from typing import Any

import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    BadRequestError,
    ChatRequest,
    LLMFactoryError,
    RateLimitError,
)
from llm_factory_qwen import encode_native_request
from llm_factory_qwen._native_request import outbound_messages, with_partial

from .conftest import COMPAT_BASE, NATIVE_BASE, make_factory, qwen_config
from .fake_dashscope import ERRORS, MULTIMODAL_PATH, TEXT_PATH, FakeDashScope, Turn

CALLS = [{"id": "call_a1", "name": "get_weather", "arguments": '{"city": "杭州"}'}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def unwrap(error: BaseException) -> BaseException:
    if isinstance(error, AllDeploymentsFailedError) and error.last_error is not None:
        return error.last_error
    return error


def params_of(sent: Any) -> dict[str, Any]:
    """The parameters a request carried: native ``parameters``, or compatible mode's body."""
    body = sent.body
    return dict(body["parameters"]) if "parameters" in body else dict(body)


def streamed(sent: Any) -> bool:
    return sent.headers.get("x-dashscope-sse") == "enable" or bool(sent.body.get("stream"))


# -- thinking -------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["qwen3-32b", "qwen3-235b-a22b", "qwen3.5-plus"])
async def test_a_plain_call_to_a_thinking_by_default_model_turns_thinking_off(
    fake: FakeDashScope, base: str, model: str
) -> None:
    fake.queue(Turn(pieces=["Hi"], reasoning=["hm"]))
    async with make_factory(fake, qwen_config(base, model_name=model)) as factory:
        result = await factory.chat_async("Hi")
    sent = fake.requests[0]
    assert not streamed(sent) and params_of(sent)["enable_thinking"] is False
    assert result.choices[0].message.content == "Hi"
    assert result.choices[0].message.get("reasoning_content") is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "sent_params"),
    [
        ({"reasoning_effort": "high"}, {"enable_thinking": True, "thinking_budget": 32768}),
        ({"reasoning_effort": "xhigh"}, {"enable_thinking": True}),
        ({"enable_thinking": True}, {"enable_thinking": True}),  # the gateway's extra_body
        (
            {"extra_body": {"enable_thinking": True, "thinking_budget": 50}},
            {"enable_thinking": True, "thinking_budget": 50},
        ),
    ],
)
async def test_reasoning_on_an_open_qwen3_is_streamed_and_aggregated(
    fake: FakeDashScope, base: str, fields: Any, sent_params: Any
) -> None:
    fake.queue(Turn(pieces=["4", "2"], reasoning=["think", "ing"], input_tokens=5))
    async with make_factory(fake, qwen_config(base, model_name="qwen3-32b")) as factory:
        result = await factory.chat_async("6*7?", **fields)
    sent = fake.requests[0]
    assert len(fake.requests) == 1 and streamed(sent)
    params = params_of(sent)
    assert {k: params.get(k) for k in sent_params} == sent_params
    assert "thinking_budget" in params or "thinking_budget" not in sent_params
    assert "reasoning_effort" not in params, "translated, not forwarded"
    choice = result.choices[0]
    assert choice.message.content == "42" and choice.message.get("reasoning_content") == "thinking"
    assert choice.finish_reason == "stop" and result.id.startswith("chatcmpl-")
    assert result.object == "chat.completion"
    assert result.usage is not None and result.usage.prompt_tokens == 5
    assert result.usage.completion_tokens_details == {"reasoning_tokens": 2}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("qwq-plus", TEXT_PATH),
        ("qvq-max", MULTIMODAL_PATH),
        ("qwen3-omni-flash", MULTIMODAL_PATH),
        ("qwen-omni-turbo", MULTIMODAL_PATH),
        ("qwen3-235b-a22b-thinking-2507", TEXT_PATH),
    ],
)
async def test_stream_only_models_answer_plain_calls(fake: FakeDashScope, base: str, model: str, path: str) -> None:
    fake.queue(Turn(pieces=[], reasoning=["need ", "weather"], tool_calls=CALLS))
    async with make_factory(fake, qwen_config(base, model_name=model)) as factory:
        result = await factory.chat_async("Weather in Hangzhou?", tools=TOOLS)
    sent = fake.requests[0]
    assert streamed(sent)
    if base == NATIVE_BASE:
        assert sent.path.endswith(path)
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []] == [
        ("call_a1", "get_weather", '{"city": "杭州"}')
    ]
    if model.startswith(("qwq", "qvq")) or "thinking" in model:
        assert choice.message.get("reasoning_content") == "need weather"
    assert result.usage is not None and result.usage.total_tokens > 0


@pytest.mark.anyio
async def test_a_stream_keeps_the_models_default_and_maps_none(fake: FakeDashScope, base: str) -> None:
    fake.queue(Turn(pieces=["a"], reasoning=["r"]), Turn(pieces=["a"], reasoning=["r"]))
    async with make_factory(fake, qwen_config(base, model_name="qwen3.5-plus")) as factory:
        default = [c async for c in factory.stream_async("Hi")]
        off = [c async for c in factory.stream_async("Hi", reasoning_effort="none")]
    assert "enable_thinking" not in params_of(fake.requests[0])
    assert "".join(c.choices[0].delta.get("reasoning_content", "") for c in default if c.choices) == "r"
    assert params_of(fake.requests[1])["enable_thinking"] is False
    assert all(not c.choices or not c.choices[0].delta.get("reasoning_content") for c in off)


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_qwen35_takes_the_multimodal_path_on_the_native_api(fake: FakeDashScope, stream: bool) -> None:
    async with make_factory(fake, qwen_config(NATIVE_BASE, model_name="qwen3.5-plus")) as factory:
        if stream:
            text = "".join([c.choices[0].delta.content or "" async for c in factory.stream_async("Hi") if c.choices])
        else:
            text = (await factory.chat_async("Hi")).choices[0].message.content or ""
    assert text == "Hello from DashScope"
    assert fake.requests[0].path == MULTIMODAL_PATH
    assert fake.requests[0].body["input"]["messages"][0]["content"] == [{"text": "Hi"}]


# -- tool_choice ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_required_is_sent_as_auto(fake: FakeDashScope, base: str, stream: bool) -> None:
    fake.queue(Turn(pieces=[], tool_calls=CALLS))
    async with make_factory(fake, qwen_config(base)) as factory:
        if stream:
            [c async for c in factory.stream_async("Weather?", tools=TOOLS, tool_choice="required")]
        else:
            await factory.chat_async("Weather?", tools=TOOLS, tool_choice="required")
    assert params_of(fake.requests[0])["tool_choice"] == "auto"


@pytest.mark.anyio
async def test_the_fail_policy_refuses_before_any_request(fake: FakeDashScope, base: str) -> None:
    async with make_factory(fake, qwen_config(base, unsupported_params="fail")) as factory:
        with pytest.raises(LLMFactoryError) as info:
            await factory.chat_async("Weather?", tools=TOOLS, tool_choice="required")
    error = unwrap(info.value)
    assert isinstance(error, BadRequestError) and error.param == "tool_choice"
    assert "qwen.tool_choice_required" in str(error)
    assert fake.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "fields", "kept"),
    [
        ("qwen3.5-plus", {}, False),  # thinks by default in a stream
        ("qwen-plus", {}, True),
        ("qwen-plus", {"extra_body": {"enable_thinking": True}}, False),
        ("qwen-plus", {"reasoning_effort": "medium"}, False),
        ("qwq-plus", {}, False),
    ],
)
async def test_a_named_choice_is_dropped_in_thinking_mode(
    fake: FakeDashScope, base: str, model: str, fields: Any, kept: bool
) -> None:
    fake.queue(Turn(pieces=[], tool_calls=CALLS))
    async with make_factory(fake, qwen_config(base, model_name=model)) as factory:
        chunks = [c async for c in factory.stream_async("Weather?", tools=TOOLS, tool_choice=NAMED, **fields)]
    assert params_of(fake.requests[0]).get("tool_choice") == (NAMED if kept else None)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@pytest.mark.anyio
async def test_a_named_choice_stays_on_a_plain_call_to_a_thinking_by_default_model(
    fake: FakeDashScope, base: str
) -> None:
    fake.queue(Turn(pieces=[], tool_calls=CALLS))
    async with make_factory(fake, qwen_config(base, model_name="qwen3-32b")) as factory:
        result = await factory.chat_async("Weather?", tools=TOOLS, tool_choice=NAMED)
    params = params_of(fake.requests[0])
    assert params["tool_choice"] == NAMED and params["enable_thinking"] is False
    assert result.choices[0].finish_reason == "tool_calls"


# -- stream errors ---------------------------------------------------------------------------------


def assert_parsed(error: BaseException, cls: type[BaseException], message: str) -> None:
    assert isinstance(error, cls), f"{type(error).__name__}: {error}"
    text = str(error)
    assert message.strip() in text
    assert not any(raw in text for raw in ("event:", "data:", "HTTP_STATUS", "id:1")), text


@pytest.mark.anyio
@pytest.mark.parametrize("http_status", [200, 400], ids=["on-200", "on-4xx"])
@pytest.mark.parametrize(("kind", "cls"), [("bad_request", BadRequestError), ("rate_limit", RateLimitError)])
async def test_an_sse_error_frame_is_a_typed_error(
    fake: FakeDashScope, base: str, http_status: int, kind: str, cls: type[BaseException]
) -> None:
    error = ERRORS[kind]
    status = http_status if http_status == 200 else error.status
    fake.queue(Turn(error=error, sse_error_status=status))
    async with make_factory(fake, qwen_config(base)) as factory:
        with pytest.raises(LLMFactoryError) as info:
            [c async for c in factory.stream_async("Hi")]
    found = unwrap(info.value)
    assert_parsed(found, cls, error.message)
    assert getattr(found, "status", None) == error.status, "the status from :HTTP_STATUS/nnn"


@pytest.mark.anyio
async def test_an_sse_error_frame_on_a_plain_call_is_a_typed_error(fake: FakeDashScope, base: str) -> None:
    fake.queue(Turn(error=ERRORS["context"], sse_error_status=400))
    async with make_factory(fake, qwen_config(base)) as factory:
        with pytest.raises(LLMFactoryError) as info:
            await factory.chat_async("Hi")
    assert_parsed(unwrap(info.value), BadRequestError, ERRORS["context"].message)


@pytest.mark.anyio
async def test_a_rule_error_on_a_native_stream_is_typed(fake: FakeDashScope) -> None:
    # Forcing the text API on qwen3.5-plus: DashScope answers the stream with event:error (url error).
    config = qwen_config(NATIVE_BASE, model_name="qwen3.5-plus", multimodal=False)
    async with make_factory(fake, config) as factory:
        with pytest.raises(LLMFactoryError) as info:
            [c async for c in factory.stream_async("Hi")]
    assert_parsed(unwrap(info.value), BadRequestError, "url error")


@pytest.mark.anyio
@pytest.mark.parametrize("native_event", [False, True], ids=["openai-shape", "native-event"])
async def test_a_mid_stream_error_in_compatible_mode_ends_the_stream_typed(
    fake: FakeDashScope, native_event: bool
) -> None:
    fake.queue(
        Turn(
            pieces=["a", "b", "c"],
            stream_error=ERRORS["content_filter"],
            error_after=2,
            native_error_event=native_event,
        )
    )
    seen: list[str] = []
    async with make_factory(fake, qwen_config(COMPAT_BASE)) as factory:
        with pytest.raises(LLMFactoryError) as info:
            async for chunk in factory.stream_async("Hi"):
                seen += [chunk.choices[0].delta.content or ""] if chunk.choices else []
    assert "".join(seen) == "a"
    assert "inappropriate" in str(info.value)
    assert not any(raw in str(info.value) for raw in ("event:", "data:", "HTTP_STATUS"))


# -- extras, foreign fields, long histories ---------------------------------------------------------


@pytest.mark.anyio
async def test_top_level_unknown_fields_reach_the_body(fake: FakeDashScope, base: str) -> None:
    async with make_factory(fake, qwen_config(base)) as factory:
        await factory.chat_async("Hi", top_k=20, enable_search=True, search_options={"forced_search": True})
        [c async for c in factory.stream_async("Hi", top_k=5)]
    first, second = (params_of(r) for r in fake.requests)
    assert (first["top_k"], first["enable_search"], first["search_options"]) == (20, True, {"forced_search": True})
    assert second["top_k"] == 5
    if base == NATIVE_BASE:
        assert "top_k" not in fake.requests[0].body, "native: inside parameters"


HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "need the tool",
        "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "sig"}],
        "tool_calls": [
            {
                "id": "call_a1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "c2ln"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_a1", "content": "sunny"},
]


@pytest.mark.anyio
async def test_other_providers_fields_are_not_sent(fake: FakeDashScope, base: str) -> None:
    history = [dict(m) for m in HISTORY]
    async with make_factory(fake, qwen_config(base)) as factory:
        await factory.chat_async(history)
        [c async for c in factory.stream_async(history)]
    for sent in fake.requests:
        messages = sent.body["messages"] if base == COMPAT_BASE else sent.body["input"]["messages"]
        assistant = messages[1]
        assert "thinking_blocks" not in assistant
        assert assistant["tool_calls"] == [
            {"id": "call_a1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ]
        assert assistant["reasoning_content"] == "need the tool", "DashScope accepts it in history"
    assert history == HISTORY, "the caller's messages are not changed"


def _conversation(n: int) -> list[dict[str, Any]]:
    """Alternating turns with same-role runs, a tool round trip every 50 messages."""
    messages: list[dict[str, Any]] = []
    for i in range(n):
        if i % 50 == 10:
            messages.append({**HISTORY[1], "tool_calls": [{**HISTORY[1]["tool_calls"][0], "id": f"call_{i}"}]})
        elif i % 50 == 11:
            messages.append({"role": "tool", "tool_call_id": f"call_{i - 1}", "content": "ok"})
        else:
            role = "user" if (i // 3) % 2 == 0 else "assistant"  # runs of three same-role messages
            messages.append({"role": role, "content": f"m{i}"})
    return messages


@pytest.mark.parametrize("mode", ["native", "compatible"])
def test_a_20000_message_conversation_encodes_in_linear_time(mode: str) -> None:
    messages = _conversation(20_000)
    request = ChatRequest(messages=messages)  # type: ignore[arg-type]
    start = time.perf_counter()
    if mode == "native":
        sent = encode_native_request(request, "qwen-plus", stream=False, multimodal=False)["input"]["messages"]
    else:
        sent = with_partial(outbound_messages(list(request.messages)))
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{elapsed:.2f}s for 20,000 messages"
    assert len(sent) == 20_000
    assert [m.get("content") for m in sent[:3]] == ["m0", "m1", "m2"]
    assert all("thinking_blocks" not in m for m in sent)
    assert sent[10]["tool_calls"][0]["id"] == "call_10" and "extra_content" not in sent[10]["tool_calls"][0]
    # Nothing foreign: the list is passed through as it is (no copy of a long history).
    plain = [m for m in messages if "tool_calls" not in m]
    assert outbound_messages(plain) is plain


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_explicit_cache_writes_and_cache_control(fake: FakeDashScope, base: str, stream: bool) -> None:
    cached_part = {"type": "text", "text": "a long, stable system prompt", "cache_control": {"type": "ephemeral"}}
    messages = [{"role": "system", "content": [cached_part]}, {"role": "user", "content": "Hi"}]
    fake.queue(Turn(pieces=["ok"], input_tokens=1500, cache_created=1400))
    async with make_factory(fake, qwen_config(base, model_name="qwen-plus")) as factory:
        if stream:
            chunks = [c async for c in factory.stream_async(messages, stream_options={"include_usage": True})]
            usage = chunks[-1].usage
        else:
            usage = (await factory.chat_async(messages)).usage
    assert usage is not None and usage.prompt_tokens == 1500
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details["cache_write_tokens"] == 1400
    assert usage.prompt_tokens_details["cached_tokens"] == 0
    sent = fake.requests[0].body
    messages_sent = sent["messages"] if base == COMPAT_BASE else sent["input"]["messages"]
    assert messages_sent[0]["content"] == [cached_part], "the cache marker keeps its part"
    assert messages_sent[1]["content"] == "Hi"
