"""Provider extras (top-level unknown fields, as the OpenAI SDK's ``extra_body`` sends them through
the gateway) and prompt caching (``cache_control`` on parts, system, tools; usage), on both hosts
over real sockets on both transports. The fakes reject unknown fields and bad cache markers."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_claude._codec import OPENAI_ONLY_FIELDS, encode_messages_request
from llm_factory_core import ChatRequest

from .fake_claude import Reply
from .helpers import WEATHER_TOOL, hosts, served

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), hosts())
async def test_top_level_unknown_fields_reach_the_body_like_extra_body(
    make_fake: Any, make_config: Any, http_transport: str
) -> None:
    fake = make_fake()
    async with served(fake, [make_config()], http_transport) as f:
        # What the OpenAI SDK sends for extra_body={"top_k": 7, ...}: top-level fields.
        await f.chat_async("Hi", top_k=7, service_tier="auto", store=True, verbosity="low")
        await f.chat_async("Hi", top_k=7, extra_body={"top_k": 3})  # extra_body (library callers) wins
    first, second = fake.bodies
    assert first["top_k"] == 7 and first["service_tier"] == "auto"
    assert "store" not in first and "verbosity" not in first  # OpenAI-only: Claude would answer 400
    assert second["top_k"] == 3


def test_openai_only_fields_and_shapes_are_not_forwarded() -> None:
    request = ChatRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "x"}],
            "metadata": {"session": "abc"},  # OpenAI's metadata: any keys; Claude's: user_id only
            "service_tier": "flex",
            "prompt_cache_key": "k",
            "output_config": {"effort": "low"},
        }
    )
    body = encode_messages_request(request, allow_image_urls=False, model="claude-opus-4-6")
    assert {"metadata", "service_tier", "prompt_cache_key"}.isdisjoint(body)
    assert body["output_config"] == {"effort": "low"}
    assert "prompt_cache_key" in OPENAI_ONLY_FIELDS


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), hosts())
async def test_cache_control_reaches_claude_unchanged(make_fake: Any, make_config: Any, http_transport: str) -> None:
    fake = make_fake()
    fake.script.append(Reply.text("ok", usage=(12, 3), cache=(1800, 0)))
    fake.script.append(Reply.text("ok", usage=(12, 3), cache=(0, 2048)))
    tool = {**WEATHER_TOOL, "cache_control": HOUR}
    in_function = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    in_function["function"]["cache_control"] = EPHEMERAL  # type: ignore[index]
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Long instructions."},
                {"type": "text", "text": "A long document.", "cache_control": EPHEMERAL},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "Question?", "cache_control": EPHEMERAL}]},
    ]
    async with served(fake, [make_config()], http_transport) as f:
        read = await f.chat_async(messages, tools=[tool, in_function])
        written = await f.chat_async("Plain system", tools=[WEATHER_TOOL])
    body = fake.bodies[0]
    assert body["system"] == [
        {"type": "text", "text": "Long instructions."},
        {"type": "text", "text": "A long document.", "cache_control": EPHEMERAL},
    ]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "Question?", "cache_control": EPHEMERAL}]
    assert body["tools"][0]["cache_control"] == HOUR and body["tools"][1]["cache_control"] == EPHEMERAL
    assert "cache_control" not in fake.bodies[1]["tools"][0]
    assert read.usage is not None and read.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 12 + 1800,
        "completion_tokens": 3,
        "total_tokens": 1815,
        "prompt_tokens_details": {"cached_tokens": 1800},
    }
    assert written.usage is not None and written.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 12 + 2048,
        "completion_tokens": 3,
        "total_tokens": 2063,
        "prompt_tokens_details": {"cache_write_tokens": 2048},
    }


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), hosts())
async def test_cache_usage_in_streams(make_fake: Any, make_config: Any, http_transport: str) -> None:
    fake = make_fake()
    fake.script.append(Reply.text("ok", usage=(12, 3), cache=(100, 50)))
    async with served(fake, [make_config()], http_transport) as f:
        chunks = [c async for c in f.stream_async("Hi", stream_options={"include_usage": True})]
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == 162
    assert usage.model_dump()["prompt_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 50}


def test_a_message_level_marker_and_plain_system_text() -> None:
    request = ChatRequest.model_validate(
        {
            "messages": [
                {"role": "system", "content": "Be brief.", "cache_control": EPHEMERAL},
                {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
                {"role": "user", "content": "Long question", "cache_control": EPHEMERAL},
            ]
        }
    )
    body = encode_messages_request(request, allow_image_urls=False)
    assert body["system"] == [
        {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "AB"},  # no marker: flattened as before
    ]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "Long question", "cache_control": EPHEMERAL}]


@pytest.mark.anyio
async def test_the_fake_rejects_a_fifth_breakpoint(http_transport: str) -> None:
    from llm_factory_core import BadRequestError

    from .fake_claude import FakeAnthropic
    from .helpers import anthropic_config

    fake = FakeAnthropic()
    parts = [{"type": "text", "text": f"p{i}", "cache_control": EPHEMERAL} for i in range(5)]
    async with served(fake, [anthropic_config()], http_transport) as f:
        with pytest.raises(BadRequestError, match="A maximum of 4 blocks with cache_control"):
            await f.chat_async([{"role": "user", "content": parts}])
