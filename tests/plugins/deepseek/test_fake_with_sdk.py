"""The fake is checked against the official ``openai`` SDK, used the way DeepSeek documents
(``OpenAI(base_url="https://api.deepseek.com", api_key=...)``), and the plugin's requests are
checked against what that SDK sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import serve_handler

from .fake_deepseek import ROUND_TRIP_MESSAGE, FakeDeepSeek

KEY = "sk-deepseek-test-key-0001"
BASE = "https://api.deepseek.com"


@pytest.fixture
def fake() -> FakeDeepSeek:
    return FakeDeepSeek(keys=(KEY,), broke=("sk-deepseek-broke-key-0002",))


@pytest.fixture
def sdk(fake: FakeDeepSeek) -> Iterator[openai.OpenAI]:
    with httpx.Client(transport=fake.transport) as http:
        yield openai.OpenAI(base_url=BASE, api_key=KEY, http_client=http, max_retries=0)


def test_sdk_parses_a_reasoner_reply_with_leading_blank_lines(fake: FakeDeepSeek, sdk: openai.OpenAI) -> None:
    fake.add(keepalives=5, reasoning="First, compare 9.11 and 9.8.", text="9.8 is greater", cache_hit=3)
    reply = sdk.chat.completions.create(model="deepseek-reasoner", messages=[{"role": "user", "content": "Which?"}])
    message = reply.choices[0].message
    assert message.content == "9.8 is greater"
    assert message.model_extra == {"reasoning_content": "First, compare 9.11 and 9.8."}
    assert reply.usage is not None
    extra = reply.usage.model_extra or {}
    assert extra["prompt_cache_hit_tokens"] == 3
    assert extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == reply.usage.prompt_tokens
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 5  # words of the reasoning


def test_sdk_streams_reasoning_deltas_through_keep_alives(fake: FakeDeepSeek, sdk: openai.OpenAI) -> None:
    fake.add(keepalives=3, reasoning="Hmm let me see", text="Hello there")
    chunks = list(
        sdk.chat.completions.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert (reasoning, text) == ("Hmm let me see", "Hello there")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1


@pytest.mark.parametrize(
    ("kind", "sdk_error", "status"),
    [
        ("auth", openai.AuthenticationError, 401),
        ("rate_limit", openai.RateLimitError, 429),
        ("balance", openai.APIStatusError, 402),
        ("server", openai.InternalServerError, 500),
        ("busy", openai.InternalServerError, 503),
        ("bad_request", openai.BadRequestError, 400),
        ("invalid", openai.UnprocessableEntityError, 422),
    ],
)
def test_sdk_raises_its_own_errors_for_the_fakes_errors(
    fake: FakeDeepSeek, sdk: openai.OpenAI, kind: str, sdk_error: type[openai.APIStatusError], status: int
) -> None:
    fake.add(error=kind)
    with pytest.raises(sdk_error) as info:
        sdk.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["message"]


def test_sdk_gets_the_fakes_real_checks(fake: FakeDeepSeek) -> None:
    """Auth and balance come from the key itself, not from a script."""
    with httpx.Client(transport=fake.transport) as http:
        bad = openai.OpenAI(base_url=BASE, api_key="sk-wrong-key-9999", http_client=http, max_retries=0)
        with pytest.raises(openai.AuthenticationError, match=r"\*\*\*\*9999 is invalid"):
            bad.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Hi"}])
        broke = openai.OpenAI(base_url=BASE, api_key="sk-deepseek-broke-key-0002", http_client=http, max_retries=0)
        with pytest.raises(openai.APIStatusError, match="Insufficient Balance") as info:
            broke.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Hi"}])
        assert info.value.status_code == 402
        good = openai.OpenAI(base_url=BASE, api_key=KEY, http_client=http, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="Model Not Exist"):
            good.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])


def test_sdk_reads_insufficient_system_resource_as_a_finish_reason(fake: FakeDeepSeek, sdk: openai.OpenAI) -> None:
    """The raw wire value the plugin must turn into an error (the SDK passes it through as-is)."""
    fake.add(finish_reason="insufficient_system_resource", text="partial")
    reply = sdk.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].finish_reason == "insufficient_system_resource"


# -- the plugin's requests carry what the SDK sends ------------------------------------------------

PARAMS: dict[str, Any] = {
    "temperature": 0.3,
    "max_tokens": 50,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
    "tool_choice": "auto",
}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def _sdk_request(fake: FakeDeepSeek, sdk: openai.OpenAI, stream: bool) -> httpx.Request:
    kwargs: dict[str, Any] = dict(PARAMS)
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    result = sdk.chat.completions.create(model="deepseek-chat", messages=MESSAGES, **kwargs)  # type: ignore[call-overload]
    if stream:
        list(result)
    return fake.requests[-1]


async def _plugin_request(fake: FakeDeepSeek, stream: bool) -> httpx.Request:
    config = ModelConfig(provider="deepseek", model_name="deepseek-chat", api_key=KEY)
    async with LLMFactory(config, transport=fake.transport) as factory:
        if stream:
            async for _ in factory.stream_async(MESSAGES, stream_options={"include_usage": True}, **PARAMS):
                pass
        else:
            await factory.chat_async(MESSAGES, **PARAMS)
    return fake.requests[-1]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_plugin_request_matches_the_sdks(fake: FakeDeepSeek, sdk: openai.OpenAI, stream: bool) -> None:
    theirs = _sdk_request(fake, sdk, stream)
    ours = await _plugin_request(fake, stream)
    assert (ours.method, ours.url) == (theirs.method, theirs.url) == ("POST", httpx.URL(BASE + "/chat/completions"))
    for header in ("authorization", "content-type"):
        assert ours.headers[header] == theirs.headers[header]
    assert ours.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(ours.content) == json.loads(theirs.content)


# -- today's models: the fake's rules, checked with the SDK over a real socket ----------------------

WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
TOOL_CALL = [{"id": "call_00_sdk", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]


@pytest.fixture
def served(fake: FakeDeepSeek) -> Iterator[openai.OpenAI]:
    with serve_handler(fake) as base, openai.OpenAI(base_url=base, api_key=KEY, max_retries=0) as client:
        yield client


@pytest.mark.parametrize(
    ("model", "extra", "thinks"),
    [
        ("deepseek-flash", {}, True),
        ("deepseek-v4-pro", {}, True),
        ("deepseek-v4-flash", {}, True),
        ("deepseek-reasoner", {}, True),
        ("deepseek-chat", {}, False),
        ("deepseek-v4-pro", {"thinking": {"type": "disabled"}}, False),
        ("deepseek-chat", {"thinking": {"type": "enabled"}}, True),
    ],
)
def test_sdk_sees_todays_models_think_by_default(
    served: openai.OpenAI, model: str, extra: dict[str, Any], thinks: bool
) -> None:
    reply = served.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], extra_body=extra)
    reasoning = (reply.choices[0].message.model_extra or {}).get("reasoning_content")
    assert (reasoning == "Let me think.") is thinks and (reasoning is None) is not thinks


def _tool_history(**assistant: Any) -> list[Any]:
    return [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": TOOL_CALL, **assistant},
        {"role": "tool", "tool_call_id": "call_00_sdk", "content": "sunny"},
    ]


@pytest.mark.parametrize("assistant", [{}, {"reasoning_content": None}])
def test_sdk_gets_deepseeks_400_for_a_tool_stretch_without_reasoning(
    served: openai.OpenAI, assistant: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        served.chat.completions.create(model="deepseek-flash", messages=_tool_history(**assistant), tools=WEATHER)
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["message"] == ROUND_TRIP_MESSAGE


@pytest.mark.parametrize("reasoning", ["", "I need the weather tool"])
def test_sdk_passes_back_reasoning_even_empty(served: openai.OpenAI, reasoning: str) -> None:
    history = _tool_history(reasoning_content=reasoning)
    reply = served.chat.completions.create(model="deepseek-v4-pro", messages=history, tools=WEATHER)
    assert reply.choices[0].message.content == "Hello from DeepSeek"
    # Outside thinking mode the stretch needs nothing.
    plain = served.chat.completions.create(
        model="deepseek-v4-pro", messages=_tool_history(), tools=WEATHER, extra_body={"thinking": {"type": "disabled"}}
    )
    assert plain.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high", "xhigh", "max"])
def test_sdk_reasoning_effort_values_are_accepted(served: openai.OpenAI, effort: str) -> None:
    reply = served.chat.completions.create(
        model="deepseek-flash",
        messages=[{"role": "user", "content": "Hi"}],
        reasoning_effort=effort,  # type: ignore[arg-type]
    )
    assert reply.choices[0].message.content == "Hello from DeepSeek"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"reasoning_effort": "none"}, "reasoning_effort: unknown variant `none`"),
        ({"thinking": {"type": "auto"}}, "thinking.type: unknown variant"),
    ],
)
def test_sdk_gets_a_400_for_an_unknown_thinking_control(
    served: openai.OpenAI, extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(openai.BadRequestError, match=match):
        served.chat.completions.create(
            model="deepseek-flash", messages=[{"role": "user", "content": "Hi"}], extra_body=extra
        )


def test_sdk_max_tokens_caps_the_reply_and_max_completion_tokens_does_not(served: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Hi"}]
    capped = served.chat.completions.create(model="deepseek-chat", messages=messages, max_tokens=2)
    assert (capped.choices[0].message.content, capped.choices[0].finish_reason) == ("Hello from", "length")
    ignored = served.chat.completions.create(model="deepseek-chat", messages=messages, max_completion_tokens=2)
    assert (ignored.choices[0].message.content, ignored.choices[0].finish_reason) == ("Hello from DeepSeek", "stop")


def test_sdk_chat_prefix_completion_needs_the_beta_base(fake: FakeDeepSeek, served: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "one ", "prefix": True}]
    with pytest.raises(openai.BadRequestError, match="beta"):
        served.chat.completions.create(model="deepseek-chat", messages=messages)
    fake.add(text="two three")
    beta = served.with_options(base_url=str(served.base_url).rstrip("/") + "/beta")
    reply = beta.chat.completions.create(model="deepseek-chat", messages=messages)
    assert reply.choices[0].message.content == "two three"
    assert fake.requests[-1].url.path == "/beta/chat/completions"
    misplaced: Any = [{"role": "user", "content": "Count", "prefix": True}]
    with pytest.raises(openai.BadRequestError, match="last message"):
        beta.chat.completions.create(model="deepseek-chat", messages=misplaced)


def test_sdk_gets_a_400_for_another_providers_content_part(served: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "c2ln"}]},
        {"role": "user", "content": "And?"},
    ]
    with pytest.raises(openai.BadRequestError, match=r"messages\[1\]\.content: unknown variant `thinking`"):
        served.chat.completions.create(model="deepseek-chat", messages=messages)


def test_sdk_reads_a_cut_stream_as_unfinished(fake: FakeDeepSeek, served: openai.OpenAI) -> None:
    fake.add(text="one two three", cut_after=3)
    chunks = list(
        served.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "Hi"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two "
    assert all(c.choices[0].finish_reason is None for c in chunks)
