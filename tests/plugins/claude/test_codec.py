"""The pure translation functions, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

import llm_factory_claude
from llm_factory_claude._codec import RequestError, encode_messages_request
from llm_factory_claude._decode import MessagesStreamState, usage_from_anthropic
from llm_factory_claude._errors import classify_bedrock_exception, normalise_aws_code
from llm_factory_core import ChatRequest, ContextLengthError, RateLimitError, ServerError

from .fake_claude import Reply, stream_events


def encode(allow_urls: bool = False, **fields: Any) -> dict[str, Any]:
    fields.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return encode_messages_request(ChatRequest(**fields), default_max_tokens=1000, allow_image_urls=allow_urls)


def test_public_api() -> None:
    assert llm_factory_claude.__all__ == ["ClaudeProvider", "ClaudeSettings"]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(tool_choice: Any, parallel: bool | None, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = encode(tools=tools, tool_choice=tool_choice, parallel_tool_calls=parallel)
    assert body["tool_choice"] == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


def test_defaults_clamps_and_merges() -> None:
    body = encode(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": ""},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call:1/x", "function": {"name": "f", "arguments": ""}}],
            },
            {"role": "tool", "tool_call_id": "call:1/x", "content": "ok"},
            {"role": "user", "content": "next"},
        ],
        temperature=1.7,
        stop="END",
    )
    assert body["max_tokens"] == 1000 and body["temperature"] == 1.0 and body["stop_sequences"] == ["END"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "call_1_x", "name": "f", "input": {}}]
    assert body["messages"][2]["content"][0]["tool_use_id"] == "call_1_x"  # the same id mapping pairs them
    assert body["messages"][2]["content"][1] == {"type": "text", "text": "next"}
    assert "tools" not in body and "tool_choice" not in body and "system" not in body


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"n": 2}, "n must be 1"),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{bad"}}]}
                ]
            },
            "not valid JSON",
        ),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "no user or assistant"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}],
                    }
                ]
            },
            "jpeg",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input_audio"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "function"),
    ],
)
def test_requests_claude_cannot_take(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(RequestError, match=match):
        encode(**fields)


def test_images_percent_encoded_data_and_urls() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/gif,GIF89a"}}
    body = encode(messages=[{"role": "user", "content": [part]}])
    assert body["messages"][0]["content"][0]["source"] == {
        "type": "base64",
        "media_type": "image/gif",
        "data": "R0lGODlh",
    }
    url = {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}
    body = encode(allow_urls=True, messages=[{"role": "user", "content": [url]}])
    assert body["messages"][0]["content"][0]["source"] == {"type": "url", "url": "https://img.test/a.png"}


def test_usage_counts_cache_tokens_as_prompt_tokens() -> None:
    usage = usage_from_anthropic(
        {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5, "output_tokens": 3}
    )
    assert usage == {
        "prompt_tokens": 115,
        "completion_tokens": 3,
        "total_tokens": 118,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
    }
    written_only = usage_from_anthropic({"input_tokens": 3, "cache_creation_input_tokens": 2000, "output_tokens": 1})
    assert written_only is not None and written_only["prompt_tokens_details"] == {"cache_write_tokens": 2000}


def test_stream_state_without_message_stop() -> None:
    state = MessagesStreamState("m", include_usage=True)
    events = stream_events(Reply.text("x"), "m", bedrock=True)[:-1]
    chunks = [c for e in events for c in state.feed(e)]
    assert all(c.choices[0].finish_reason is None for c in chunks)
    rest = state.close()
    assert rest is not None and rest[0].choices[0].finish_reason == "stop"
    assert rest[1].usage is not None and rest[1].usage.completion_tokens == 7
    assert MessagesStreamState("m", include_usage=False).close() is None


def test_aws_error_codes() -> None:
    assert (
        normalise_aws_code("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
        == "ThrottlingException"
    )
    assert normalise_aws_code("com.amazon.coral#ValidationException") == "ValidationException"
    assert classify_bedrock_exception("throttlingException", b'{"message":"slow"}')[0] is RateLimitError
    assert classify_bedrock_exception("modelStreamErrorException", b'{"message":"x"}')[0] is ServerError
    cls, message, _ = classify_bedrock_exception(
        "validationException", b'{"message":"Input is too long for requested model."}'
    )
    assert cls is ContextLengthError and "too long" in message
