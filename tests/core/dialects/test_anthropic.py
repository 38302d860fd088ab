"""The Anthropic Messages dialect as a pure codec: a Messages body to a ChatRequest (native and
not), a ChatCompletion to a Message, chat chunks to the event sequence; every outbound shape is
checked against the official anthropic SDK's types and its own stream accumulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from llm_factory_core import ChatCompletion, ChatCompletionChunk, InvalidRequestError
from llm_factory_core.dialects import MessagesEventStream, chat_request_from_messages, message_from_completion
from llm_factory_core.dialects.anthropic import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    estimate_input_tokens,
    image_block,
    stop_reason_from_finish,
    usage_from_anthropic,
    usage_to_anthropic,
)

EVENT = TypeAdapter(RawMessageStreamEvent)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
THINKING = {"type": "thinking", "thinking": "Paris, so call the tool.", "signature": "c2lnbmF0dXJl"}
REDACTED = {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    "cache_control": {"type": "ephemeral"},
}


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}], **kw}


# -- inbound --------------------------------------------------------------------------------------


def test_a_full_conversation_maps_to_chat_messages_in_order() -> None:
    parsed = chat_request_from_messages(
        body(
            system=[
                {"type": "text", "text": "Rules", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "More"},
            ],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        THINKING,
                        REDACTED,
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": "boom",
                            "is_error": True,
                            "cache_control": {"type": "ephemeral"},
                        },
                        {"type": "text", "text": "Try again"},
                    ],
                },
            ],
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            stop_sequences=["END"],
            metadata={"user_id": "u-1"},
            temperature=0.3,
            top_p=0.9,
            stream=True,
        ),
        native=False,
    )
    chat = parsed.chat
    assert chat.messages == [
        {"role": "system", "content": [{"type": "text", "text": "Rules", "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": "More"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "thinking_blocks": [THINKING, REDACTED],
            "reasoning_content": THINKING["thinking"],
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_1",
            "content": "Error: boom",  # no error flag in chat APIs: said in the text
            "cache_control": {"type": "ephemeral"},
        },
        {"role": "user", "content": "Try again"},
    ]
    assert chat.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]
    assert chat.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert chat.parallel_tool_calls is False
    assert (chat.max_tokens, chat.stop, chat.user, chat.temperature, chat.top_p) == (100, ["END"], "u-1", 0.3, 0.9)
    assert chat.stream and chat.include_usage
    # chat APIs reject unknown keys on tools: the tool's cache marker is reported, not sent
    assert parsed.ignored == ["tools[].cache_control"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice_forms(choice: dict[str, Any], expected: str) -> None:
    chat = chat_request_from_messages(body(tools=[WEATHER], tool_choice=choice), native=False).chat
    assert chat.tool_choice == expected and chat.parallel_tool_calls is None


def test_an_image_url_source_becomes_its_url() -> None:
    block = {
        "type": "image",
        "source": {"type": "url", "url": "https://x.test/a.png"},
        "cache_control": {"type": "ephemeral"},
    }
    chat = chat_request_from_messages(body(messages=[{"role": "user", "content": [block]}]), native=False).chat
    assert chat.messages[0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}, "cache_control": {"type": "ephemeral"}}
    ]


def test_native_upstreams_get_anthropic_s_own_fields_unchanged() -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    thinking = {"type": "enabled", "budget_tokens": 2048}
    parsed = chat_request_from_messages(
        body(
            messages=[{"role": "user", "content": [document, {"type": "text", "text": "Summarise"}]}],
            tools=[WEATHER, server_tool],
            thinking=thinking,
            top_k=5,
            service_tier="auto",
            stop_sequences=["a", "b", "c", "d", "e"],
        ),
        native=True,
        betas=["interleaved-thinking-2025-05-14"],
    )
    extra = parsed.chat.model_extra or {}
    assert extra["thinking"] == thinking and extra["top_k"] == 5 and extra["service_tier"] == "auto"
    assert extra["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert extra["stop_sequences"] == ["a", "b", "c", "d", "e"] and parsed.chat.stop is None
    assert parsed.chat.reasoning_effort is None
    assert parsed.chat.tools is not None and parsed.chat.tools[1] == server_tool
    assert parsed.chat.messages[0]["content"][0] == document
    assert parsed.ignored == []


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, None, "high"),
        ({"type": "adaptive"}, None, "high"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "disabled"}, None, None),
    ],
)
def test_thinking_becomes_reasoning_effort_elsewhere(
    thinking: dict[str, Any], output_config: dict[str, Any] | None, effort: str | None
) -> None:
    extra = {"output_config": output_config} if output_config else {}
    parsed = chat_request_from_messages(body(thinking=thinking, **extra), native=False)
    assert parsed.chat.reasoning_effort == effort
    assert "thinking" not in (parsed.chat.model_extra or {}) and "output_config" not in (parsed.chat.model_extra or {})
    assert parsed.ignored == []


def test_output_config_maps_to_chat_s_structured_output_and_effort() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    config = {"format": {"type": "json_schema", "schema": schema}, "effort": "low", "task_budget": 5}
    parsed = chat_request_from_messages(body(output_config=config), native=False)
    assert parsed.chat.response_format == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert parsed.chat.reasoning_effort == "low"
    assert parsed.ignored == ["output_config.task_budget"]
    native = chat_request_from_messages(body(output_config=config), native=True).chat
    assert (native.model_extra or {})["output_config"] == config and native.response_format is None


def test_fields_without_effect_elsewhere_are_reported() -> None:
    parsed = chat_request_from_messages(body(top_k=3, service_tier="auto"), native=False, betas=["x-beta"])
    assert parsed.ignored == ["service_tier", "top_k", "anthropic-beta"]
    assert not {"top_k", "service_tier", "anthropic_beta"} & set(parsed.chat.model_extra or {})


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"temprature": 1}, "temprature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "needs a Claude deployment"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"temperature": 3}, "temperature"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}
                ]
            },
            "'document' is not supported",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "source.type 'file'",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "unsigned"}]}]},
            "needs its signature",
        ),
    ],
)
def test_bad_input_is_a_clear_error(changes: dict[str, Any], words: str) -> None:
    data = {k: v for k, v in {**body(), **changes}.items() if v is not None}
    with pytest.raises(InvalidRequestError) as caught:
        chat_request_from_messages(data, native=False)
    assert words in caught.value.message


def test_interleaved_thinking_starts_a_new_assistant_message() -> None:
    second = {**THINKING, "thinking": "Now the second city."}
    turn = [
        THINKING,
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
        second,
        {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    chat = chat_request_from_messages(body(messages=[{"role": "assistant", "content": turn}]), native=True).chat
    assert [m["thinking_blocks"] for m in chat.messages] == [[THINKING], [second]]  # type: ignore[typeddict-item]
    assert [m["tool_calls"][0]["id"] for m in chat.messages] == ["t1", "t2"]


def test_count_only_bodies_need_no_max_tokens() -> None:
    chat = chat_request_from_messages(
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}, native=False, count_only=True
    ).chat
    assert chat.max_tokens is None and not chat.stream


# -- outbound -------------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 1,
            "model": "up-model",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}],
            "usage": {
                "prompt_tokens": 130,
                "completion_tokens": 9,
                "total_tokens": 139,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
            },
        }
    )


def test_a_completion_becomes_a_message_the_sdk_reads() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    done = completion(
        {
            "content": "Checking.",
            "reasoning_content": THINKING["thinking"],
            "thinking_blocks": [THINKING, REDACTED],
            "tool_calls": [call],
        },
        "tool_calls",
    )
    message = message_from_completion(done)
    parsed = Message.model_validate(message)
    assert parsed.id.startswith("msg_") and parsed.model == "up-model"
    assert [b.type for b in parsed.content] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert message["content"][0] == THINKING and message["content"][1] == REDACTED
    assert message["content"][3] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert parsed.stop_reason == "tool_use"
    assert message["usage"] == {
        "input_tokens": 10,
        "output_tokens": 9,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 100,
    }


def test_unsigned_reasoning_is_a_thinking_block_with_an_empty_signature() -> None:
    message = message_from_completion(completion({"content": "Hi", "reasoning_content": "hmm"}))
    assert message["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": ""}
    Message.model_validate(message)


@pytest.mark.parametrize(
    ("finish", "upstream", "expected"),
    [
        ("stop", None, "end_turn"),
        ("length", None, "max_tokens"),
        ("tool_calls", None, "tool_use"),
        ("content_filter", None, "refusal"),
        ("stop", "stop_sequence", "stop_sequence"),
        ("stop", "pause_turn", "pause_turn"),
        ("stop", "something_else", "end_turn"),
    ],
)
def test_stop_reasons(finish: str, upstream: str | None, expected: str) -> None:
    assert stop_reason_from_finish(finish, upstream) == expected


def test_an_upstream_stop_sequence_is_reported() -> None:
    message = message_from_completion(completion({"content": "1, 2"}, stop_reason="stop_sequence", stop_sequence="3"))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "3")


def test_tool_arguments_that_are_not_json_become_an_empty_input() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"cut'}}
    message = message_from_completion(completion({"content": None, "tool_calls": [call]}, "length"))
    assert message["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]
    assert message["stop_reason"] == "max_tokens"


def test_usage_maps_both_ways() -> None:
    anthropic_usage = {
        "input_tokens": 10,
        "output_tokens": 9,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 100,
    }
    openai_usage = usage_from_anthropic(anthropic_usage)
    assert openai_usage is not None and openai_usage["prompt_tokens"] == 130
    assert usage_to_anthropic(openai_usage) == anthropic_usage


def test_image_blocks_from_urls() -> None:
    assert image_block(f"data:image/png;base64,{PNG}", allow_urls=False) == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert image_block("https://x.test/a.png", allow_urls=True) == {
        "type": "image",
        "source": {"type": "url", "url": "https://x.test/a.png"},
    }
    assert image_block("https://x.test/a.png", allow_urls=False) is None
    with pytest.raises(ValueError, match="image/bmp"):
        image_block("data:image/bmp;base64,AAAA", allow_urls=True)
    with pytest.raises(ValueError, match="valid base64"):
        image_block("data:image/png;base64,not*base64", allow_urls=True)
    percent = image_block("data:image/png,%89PNG", allow_urls=False)  # bytes, not base64: encoded
    assert percent is not None and percent["source"]["data"] == "iVBORw=="


# -- the event stream -----------------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None, **choice: Any
) -> ChatCompletionChunk:
    data: dict[str, Any] = {"id": "c", "created": 1, "model": "up-model"}
    data["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, **choice}]
    if usage is not None:
        data["usage"] = usage
    return ChatCompletionChunk.model_validate(data)


def run(chunks: list[ChatCompletionChunk]) -> tuple[list[dict[str, Any]], Any]:
    """The events (each validated as the SDK's RawMessageStreamEvent) and the SDK's accumulated message."""
    stream = MessagesEventStream(message_id="msg_1", model="up-model")
    events = stream.start()
    for c in chunks:
        events += stream.feed(c)
    events += stream.finish()
    snapshot = None
    bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] == "ping":
            continue
        snapshot = accumulate_event(event=EVENT.validate_python(event), current_snapshot=snapshot, json_bufs=bufs)
    return events, snapshot


def test_chunks_become_anthropic_s_event_sequence() -> None:
    usage = {
        "prompt_tokens": 130,
        "completion_tokens": 9,
        "total_tokens": 139,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
    }
    events, final = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "Paris, so "}),
            chunk({"reasoning_content": "call the tool."}),
            chunk({"thinking_blocks": [{**THINKING, "index": 0}]}),
            chunk({"thinking_blocks": [REDACTED]}),
            chunk({"content": "Check"}),
            chunk({"content": "ing."}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({}, "tool_calls"),
            chunk(None, usage=usage),
        ]
    )
    kinds = [(e["type"], (e.get("delta") or e.get("content_block") or {}).get("type")) for e in events]
    assert kinds == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", "thinking"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", "redacted_thinking"),
        ("content_block_stop", None),
        ("content_block_start", "text"),
        ("content_block_delta", "text_delta"),
        ("content_block_delta", "text_delta"),
        ("content_block_stop", None),
        ("content_block_start", "tool_use"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1, 2, 3]
    assert final.content[0].model_dump() == THINKING
    assert final.content[1].model_dump() == REDACTED
    assert final.content[2].text == "Checking."
    assert final.content[3].input == {"city": "Paris"} and final.content[3].id == "call_1"
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 9)
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (100, 20)


def test_a_thinking_block_that_arrives_whole_streams_its_text_then_its_signature() -> None:
    events, final = run([chunk({"thinking_blocks": [THINKING]}), chunk({"content": "Hi"}), chunk({}, "stop")])
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "signature_delta", "text_delta"]
    assert final.content[0].model_dump() == THINKING and final.stop_reason == "end_turn"


def test_unsigned_reasoning_streams_as_a_thinking_block() -> None:
    _, final = run([chunk({"reasoning_content": "hmm"}), chunk({"content": "Hi"}), chunk({}, "length")])
    assert final.content[0].model_dump() == {"type": "thinking", "thinking": "hmm", "signature": ""}
    assert final.stop_reason == "max_tokens"


def test_an_upstream_stop_sequence_reaches_message_delta() -> None:
    events, final = run([chunk({"content": "1, 2"}), chunk({}, "stop", stop_reason="stop_sequence", stop_sequence="3")])
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "3"}
    assert final.stop_sequence == "3"


def test_a_failure_is_anthropic_s_error_event() -> None:
    [event] = MessagesEventStream.fail("overloaded_error", "Overloaded")
    parsed = ErrorResponse.model_validate(event)
    assert parsed.error.type == "overloaded_error" and parsed.error.message == "Overloaded"


# -- count_tokens estimate ------------------------------------------------------------------------


def test_the_estimate_follows_its_documented_formula() -> None:
    data = {
        "system": "s" * 40,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "t" * 80}, {"type": "image", "source": {}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "x", "name": "abcd", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r" * 20}]},
        ],
        "tools": [WEATHER],
    }
    chars = 40 + 80 + 4 + len(json.dumps({"a": 1})) + 20 + len(json.dumps([WEATHER]))
    expected = -(-chars // 4) + MESSAGE_OVERHEAD * 3 + IMAGE_TOKENS
    assert estimate_input_tokens(data) == expected
