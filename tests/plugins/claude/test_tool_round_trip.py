"""A tool-calling conversation through LLMFactory, in OpenAI's shape, on both hosts and every kind of
Bedrock credential, over real sockets on both HTTP transports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_factory_core import ChatCompletionChunk, ModelConfig

from .fake_claude import FakeAnthropic, Reply
from .helpers import (
    OPUS_46,
    PROFILE_ARN,
    WEATHER_TOOL,
    anthropic_config,
    api_key_config,
    bedrock_fake,
    served,
    session_config,
)

TOOL_CALLS = Reply(
    blocks=[
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
    ],
    stop_reason="tool_use",
    usage=(40, 30),
)
ANSWER = Reply.text("Paris 21C, Rome 25C.", usage=(90, 9))


def hosts() -> list[Any]:
    return [
        pytest.param(bedrock_fake, lambda: session_config(model=PROFILE_ARN), id="bedrock-sigv4-session-arn"),
        pytest.param(bedrock_fake, lambda: api_key_config(model=OPUS_46), id="bedrock-api-key"),
        pytest.param(FakeAnthropic, anthropic_config, id="anthropic"),
    ]


def history(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": '{"temp_c": 25}'},
    ]


def assert_second_body(body: dict[str, Any]) -> None:
    """The history arrived as Claude expects it: system apart, tool calls as tool_use blocks,
    both results merged into one user turn."""
    assert body["system"] == [{"type": "text", "text": "You are terse."}]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Checking both."}
    assert assistant[1] == {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
    results = body["messages"][2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_01", "toolu_02"]
    assert results[0]["content"] == [{"type": "text", "text": '{"temp_c": 21}'}]
    assert body["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), hosts())
async def test_chat_round_trip(make_fake: Any, make_config: Any, http_transport: str) -> None:
    fake = make_fake()
    fake.script.extend([TOOL_CALLS, ANSWER])
    config: ModelConfig = make_config()
    async with served(fake, [config], http_transport) as f:
        first = await f.chat_async(
            "Weather in Paris and Rome?", model="claude", tools=[WEATHER_TOOL], tool_choice="auto"
        )
        message = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        assert message.content == "Checking both."
        calls = [c.model_dump(exclude_none=True) for c in message.tool_calls or []]
        assert calls == [
            {
                "id": "toolu_01",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "toolu_02",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ]
        assert first.usage is not None and first.usage.prompt_tokens == 40 and first.usage.total_tokens == 70
        second = await f.chat_async(history(calls), model="claude", tools=[WEATHER_TOOL], tool_choice="auto")
    assert second.choices[0].message.content == "Paris 21C, Rome 25C."
    assert second.choices[0].finish_reason == "stop"
    assert_second_body(fake.bodies[1])
    assert second.to_dict()["object"] == "chat.completion"


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), hosts())
async def test_stream_round_trip(make_fake: Any, make_config: Any, http_transport: str) -> None:
    fake = make_fake()
    fake.script.extend([TOOL_CALLS, ANSWER])
    async with served(fake, [make_config()], http_transport) as f:
        chunks: list[ChatCompletionChunk] = [
            c
            async for c in f.stream_async(
                "Weather?", model="claude", tools=[WEATHER_TOOL], stream_options={"include_usage": True}
            )
        ]
        # Rebuild the tool calls the way OpenAI clients do: by delta index.
        calls: dict[int, dict[str, Any]] = {}
        text = ""
        for chunk in chunks:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for tc in choice.delta.tool_calls or []:
                    entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                    entry["id"] = tc.id or entry["id"]
                    if tc.function:
                        entry["name"] = tc.function.name or entry["name"]
                        entry["arguments"] += tc.function.arguments or ""
        assert text == "Checking both."
        assert sorted(calls) == [0, 1]
        assert calls[0]["id"] == "toolu_01" and json.loads(calls[0]["arguments"]) == {"city": "Paris"}
        assert calls[1]["id"] == "toolu_02" and json.loads(calls[1]["arguments"]) == {"city": "Rome"}
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["tool_calls"]
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (40, 30)
        assert len({c.id for c in chunks}) == 1

        openai_calls = [
            {
                "id": calls[i]["id"],
                "type": "function",
                "function": {"name": calls[i]["name"], "arguments": calls[i]["arguments"]},
            }
            for i in (0, 1)
        ]
        answer = [
            c
            async for c in f.stream_async(
                history(openai_calls), model="claude", tools=[WEATHER_TOOL], tool_choice="auto"
            )
        ]
    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == "Paris 21C, Rome 25C."
    assert all(c.usage is None for c in answer), "no usage chunk unless include_usage"
    assert_second_body(fake.bodies[1])
    assert fake.bodies[1].get("stream") is (True if isinstance(fake, FakeAnthropic) else None)
