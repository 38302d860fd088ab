"""Today's models through the library over real sockets on both transports: the token field
(finding 17), chat prefix completion and stream continuation (finding 17), ``reasoning_effort``,
usage in the OpenAI stream shape, and the model ids checked against (deepseek-flash,
deepseek-v4-pro, and the legacy names)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import AllDeploymentsFailedError, BadRequestError, LLMFactory
from llm_factory_core.testing import serve_handler
from llm_factory_deepseek import DeepSeekProvider

from .fake_deepseek import FakeDeepSeek, Reply
from .helpers import KEY, SPARE, deepseek, served

HI: list[dict[str, Any]] = [{"role": "user", "content": "Hi"}]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_max_completion_tokens_is_sent_as_max_tokens(http_transport: str, stream: bool) -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(text="one two three four", reasoning="")
    finish: list[Any]
    async with served(fake, http_transport) as factory:
        if stream:
            chunks = [c async for c in factory.stream_async(HI, max_completion_tokens=2)]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        else:
            reply = await factory.chat_async(HI, max_completion_tokens=2)
            text, finish = reply.choices[0].message.content or "", [reply.choices[0].finish_reason]
    (sent,) = fake.bodies()
    assert sent["max_tokens"] == 2 and "max_completion_tokens" not in sent
    assert (text, finish) == ("one two", ["length"]), "the cap DeepSeek honours reached it"


@pytest.mark.anyio
async def test_max_completion_tokens_under_the_fail_policy_is_a_clear_400(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEY,))
    async with served(fake, http_transport, deepseek(unsupported_params="fail")) as factory:
        with pytest.raises((BadRequestError, AllDeploymentsFailedError)) as info:
            await factory.chat_async(HI, max_completion_tokens=2)
    assert "max_completion_tokens" in str(info.value) and "deepseek.max_tokens" in str(info.value)
    assert fake.requests == [], "nothing was sent"


@pytest.mark.anyio
async def test_usage_comes_in_a_last_chunk_with_empty_choices_when_asked(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(text="Hello there").add(text="Hello there")
    async with served(fake, http_transport) as factory:
        asked = [c async for c in factory.stream_async(HI, stream_options={"include_usage": True})]
        plain = [c async for c in factory.stream_async(HI)]
    assert asked[-1].choices == [] and asked[-1].usage is not None
    assert asked[-2].choices[0].finish_reason == "stop" and asked[-2].usage is None
    assert asked[-1].usage.completion_tokens_details == {"reasoning_tokens": 3}  # DeepSeek's fields kept
    assert plain[-1].choices and plain[-1].choices[0].finish_reason == "stop", "no empty-choices chunk unasked"


@pytest.mark.anyio
async def test_a_final_assistant_message_is_continued_with_chat_prefix_completion(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(text="three", reasoning="").add(text="no prefix", reasoning="")
    history = [{"role": "user", "content": "Count to three"}, {"role": "assistant", "content": "one two "}]
    async with served(fake, http_transport, deepseek("deepseek-v4-pro")) as factory:
        reply = await factory.chat_async(history)
        opted_out = await factory.chat_async([history[0], {**history[1], "prefix": False}])
    assert reply.choices[0].message.content == "three"
    assert opted_out.choices[0].message.content == "no prefix"
    first, second = fake.requests
    assert first.url.path == "/beta/chat/completions" and second.url.path == "/chat/completions"
    assert fake.bodies()[0]["messages"][-1] == {"role": "assistant", "content": "one two ", "prefix": True}
    assert fake.bodies()[1]["messages"][-1] == {"role": "assistant", "content": "one two ", "prefix": False}
    assert history[1] == {"role": "assistant", "content": "one two "}, "the caller's message is not changed"


@pytest.mark.anyio
async def test_a_v1_base_prefix_request_goes_to_the_hosts_beta_base(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(text="three")
    with serve_handler(fake) as base:
        async with LLMFactory([deepseek(api_base=f"{base}/v1")], transport=http_transport) as factory:
            await factory.chat_async([*HI, {"role": "assistant", "content": "Hel"}])
    assert fake.requests[-1].url.path == "/beta/chat/completions"


@pytest.mark.anyio
async def test_deepseek_continues_a_broken_stream(http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEY, SPARE))
    fake.add(Reply(text="one two three", cut_after=3))  # role chunk, "one ", "two ", then the socket closes
    fake.add(Reply(text="three"))
    configs = [deepseek("deepseek-chat", name="primary"), deepseek("deepseek-chat", key=SPARE, name="backup")]
    async with served(fake, http_transport, *configs, stream_continuation=True) as factory:
        stream = factory.stream_async("Count to three")
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "one two three"
    assert stream.deployment == "backup"
    continued = fake.requests[1]
    assert continued.url.path == "/beta/chat/completions"
    assert fake.bodies()[1]["messages"][-1] == {"role": "assistant", "content": "one two ", "prefix": True}


def test_deepseek_declares_prefill_and_its_rules() -> None:
    assert DeepSeekProvider.capabilities.prefill is True
    assert [rule.name for rule in DeepSeekProvider.model_rules] == ["deepseek.max_tokens"]
