"""``response_format`` on Claude: JSON through a forced tool, returned as the reply text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_factory_claude._codec import RequestError, encode_messages_request
from llm_factory_claude._decode import MessagesStreamState, decode_message
from llm_factory_claude._json_mode import JSON_TOOL, json_mode
from llm_factory_core import BadRequestError, ChatRequest

from .fake_claude import FakeAnthropic, Reply, message_json, stream_events
from .helpers import OLD_MODEL, OPUS_46, WEATHER_TOOL, anthropic_config, bedrock_config, bedrock_fake, served

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
AS_SCHEMA = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
ANSWER = {"name": "Ada", "age": 36}


def request(**fields: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "Who?"}], **fields)


def encode(**fields: Any) -> dict[str, Any]:
    return encode_messages_request(request(**fields), default_max_tokens=1000, allow_image_urls=False)


def json_reply(answer: Any) -> Reply:
    block = {"type": "tool_use", "id": "toolu_json", "name": JSON_TOOL, "input": answer}
    return Reply(blocks=[block], stop_reason="tool_use", usage=(20, 12))


def test_a_schema_becomes_a_forced_tool() -> None:
    body = encode(response_format=AS_SCHEMA)
    assert body["tools"] == [
        {"name": JSON_TOOL, "description": "Give the answer as JSON that follows this schema.", "input_schema": PERSON}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_json_object_asks_for_any_object_and_text_changes_nothing() -> None:
    assert encode(response_format={"type": "json_object"})["tools"][0]["input_schema"] == {"type": "object"}
    assert "tools" not in encode(response_format={"type": "text"})


@pytest.mark.parametrize(
    ("response_format", "tools", "match"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x"}}, None, "json_schema.schema"),
        ({"type": "xml"}, None, "'xml' is not supported"),
        (AS_SCHEMA, [WEATHER_TOOL], "together with tools"),
    ],
)
def test_what_cannot_be_honoured_is_refused_clearly(response_format: Any, tools: Any, match: str) -> None:
    with pytest.raises(RequestError, match=match):
        encode(response_format=response_format, tools=tools)


def test_a_schema_that_is_not_an_object_is_wrapped_and_unwrapped() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    mode = json_mode(request(response_format={"type": "json_schema", "json_schema": {"name": "l", "schema": schema}}))
    assert mode is not None and mode.wrapped
    assert mode.tool["input_schema"] == {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    message = json_reply({"value": ["a", "b"]})
    reply = decode_message(message_json(message, "m", bedrock=False), model="m", json_answer=mode)
    assert json.loads(reply.choices[0].message.content or "") == ["a", "b"]
    state = MessagesStreamState("m", include_usage=False, json_answer=mode)
    chunks = [c for e in stream_events(message, "m", bedrock=False) for c in state.feed(e)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == ["a", "b"]


def test_a_json_answer_cut_short_streams_as_it_came() -> None:
    schema = {"type": "array"}
    mode = json_mode(request(response_format={"type": "json_schema", "json_schema": {"name": "l", "schema": schema}}))
    state = MessagesStreamState("m", include_usage=False, json_answer=mode)
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "name": JSON_TOOL}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"value": [1,'},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    chunks = [c for e in events for c in state.feed(e)]
    assert [c.choices[0].delta.content for c in chunks if c.choices][1] == '{"value": [1,'
    assert chunks[-1].choices[0].finish_reason == "length"


def emulated_hosts() -> list[Any]:
    """Models without structured outputs (and a native one told to use the tool): the forced tool."""
    return [
        pytest.param(bedrock_fake, lambda: bedrock_config(model=OLD_MODEL), id="bedrock-3.5"),
        pytest.param(
            FakeAnthropic, lambda: anthropic_config(model="claude-opus-4-1-20250805"), id="anthropic-opus-4.1"
        ),
        pytest.param(FakeAnthropic, lambda: anthropic_config(structured_output="tool"), id="anthropic-tool-policy"),
    ]


def native_hosts() -> list[Any]:
    return [
        pytest.param(bedrock_fake, bedrock_config, id="bedrock-sonnet-4.5"),
        pytest.param(bedrock_fake, lambda: bedrock_config(model=OPUS_46), id="bedrock-opus-4.6"),
        pytest.param(FakeAnthropic, anthropic_config, id="anthropic-sonnet-4.5"),
        pytest.param(FakeAnthropic, lambda: anthropic_config(model="claude-haiku-4-5"), id="anthropic-haiku-4.5"),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), emulated_hosts())
async def test_structured_output_through_a_forced_tool(make_fake: Any, make_config: Any, http_transport: str) -> None:
    fake = make_fake()
    fake.script.extend([json_reply(ANSWER), json_reply(ANSWER)])
    async with served(fake, [make_config()], http_transport) as f:
        reply = await f.chat_async("Who?", model="claude", response_format=AS_SCHEMA)
        chunks = [c async for c in f.stream_async("Who?", model="claude", response_format=AS_SCHEMA)]
    choice = reply.choices[0]
    assert json.loads(choice.message.content or "") == ANSWER
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(streamed) == ANSWER
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    for body in fake.bodies:
        assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
        assert "output_config" not in body


@pytest.mark.anyio
@pytest.mark.parametrize(("make_fake", "make_config"), native_hosts())
async def test_native_structured_output_with_tools_and_thinking(
    make_fake: Any, make_config: Any, http_transport: str
) -> None:
    """Sonnet/Haiku 4.5 and Opus 4.5+: ``output_config.format``, which works beside tools and
    thinking (the forced tool could do neither)."""
    fake = make_fake()
    fake.script.extend([Reply.text(json.dumps(ANSWER)), Reply.text(json.dumps(ANSWER), pieces=None)])
    params: dict[str, Any] = {"response_format": AS_SCHEMA, "tools": [WEATHER_TOOL], "reasoning_effort": "low"}
    async with served(fake, [make_config()], http_transport) as f:
        reply = await f.chat_async("Who?", model="claude", **params)
        chunks = [c async for c in f.stream_async("Who?", model="claude", **params)]
    assert json.loads(reply.choices[0].message.content or "") == ANSWER
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices)) == ANSWER
    for body in fake.bodies:
        assert body["output_config"]["format"] == {"type": "json_schema", "schema": PERSON}
        assert [t["name"] for t in body["tools"]] == ["get_weather"]
        assert "tool_choice" not in body and body["thinking"]["type"] in ("enabled", "adaptive")


@pytest.mark.anyio
async def test_response_format_with_tools_on_an_older_model_is_a_bad_request_before_any_call(
    http_transport: str,
) -> None:
    fake = bedrock_fake()
    async with served(fake, [bedrock_config(model=OLD_MODEL)], http_transport) as f:
        with pytest.raises(BadRequestError, match="together with tools"):
            await f.chat_async("Who?", model="claude", response_format=AS_SCHEMA, tools=[WEATHER_TOOL])
    assert fake.bodies == []


def test_thinking_is_turned_off_where_json_mode_is_a_forced_tool(caplog: pytest.LogCaptureFixture) -> None:
    """Anthropic: "Thinking may not be enabled when tool_choice forces tool use"; on a model without
    structured outputs JSON mode wins and the reason is logged."""
    with caplog.at_level("WARNING", logger="llm_factory_claude"):
        body = encode_messages_request(
            request(response_format=AS_SCHEMA, reasoning_effort="high"),
            allow_image_urls=False,
            model="claude-opus-4-1-20250805",
        )
    assert "thinking" not in body and body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert "JSON mode" in caplog.text
