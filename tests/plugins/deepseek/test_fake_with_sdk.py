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

from .fake_deepseek import FakeDeepSeek

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
