"""The provider-neutral chunk aggregator: a stream of OpenAI chunks -> one ChatCompletion."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import ChatCompletionChunk
from llm_factory_qwen._aggregate import ChunkAggregator, aggregate_chunks, aggregate_stream


def chunk(*choices: dict[str, Any], usage: dict[str, Any] | None = None, **head: Any) -> ChatCompletionChunk:
    data: dict[str, Any] = {"id": "chatcmpl-1", "created": 7, "model": "qwq-plus", "choices": list(choices), **head}
    if usage is not None:
        data["usage"] = usage
    return ChatCompletionChunk.model_validate(data)


def delta(index: int = 0, finish: str | None = None, logprobs: Any = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "delta": fields, "finish_reason": finish}
    if logprobs is not None:
        out["logprobs"] = logprobs
    return out


def test_text_reasoning_usage_and_head() -> None:
    chunks = [
        chunk(delta(role="assistant", content="")),
        chunk(delta(reasoning_content="think ")),
        chunk(delta(reasoning_content="hard")),
        chunk(delta(content="4"), id="chatcmpl-other"),
        chunk(delta(content="2", finish="stop")),
        chunk(usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}),
    ]
    result = aggregate_chunks(chunks)
    assert (result.id, result.created, result.model) == ("chatcmpl-1", 7, "qwq-plus")
    message = result.choices[0].message
    assert message.content == "42" and message.get("reasoning_content") == "think hard"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens == 8
    assert result.object == "chat.completion"


def test_tool_calls_are_assembled_by_index_with_their_extras() -> None:
    google = {"google": {"thought_signature": "sig"}}
    chunks = [
        chunk(
            delta(
                tool_calls=[
                    {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            )
        ),
        chunk(
            delta(
                tool_calls=[
                    {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"x"'}}
                ]
            )
        ),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a": '}}])),
        chunk(delta(tool_calls=[{"index": 0, "id": "", "function": {"arguments": "1}"}, "extra_content": google}])),
        chunk(delta(tool_calls=[{"index": 1, "function": {"arguments": ": 2}"}}], finish="tool_calls")),
    ]
    message = aggregate_chunks(chunks).choices[0].message
    assert message.content is None
    calls = [c.model_dump(exclude_none=True) for c in message.tool_calls or []]
    assert calls == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a": 1}'},
            "extra_content": google,
        },
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"x": 2}'}},
    ]


def test_several_choices_lists_and_logprobs() -> None:
    block = {"type": "thinking", "thinking": "t", "signature": "s"}
    token = {"token": "a", "logprob": -0.1}
    chunks = [
        chunk(delta(0, content="a", logprobs={"content": [token]}), delta(1, content="x")),
        chunk(delta(0, thinking_blocks=[block]), delta(1, content="y", finish="length")),
        chunk(delta(0, content="b", logprobs={"content": [token]}, thinking_blocks=[block], finish="stop")),
    ]
    result = aggregate_chunks(chunks)
    first, second = result.choices
    assert (first.index, first.message.content, first.finish_reason) == (0, "ab", "stop")
    assert first.message.get("thinking_blocks") == [block, block]
    assert first.logprobs == {"content": [token, token]}
    assert (second.index, second.message.content, second.finish_reason) == (1, "xy", "length")


def test_an_empty_stream_cannot_be_aggregated() -> None:
    aggregator = ChunkAggregator()
    with pytest.raises(ValueError, match="empty"):
        aggregator.result()


@pytest.mark.anyio
async def test_async_streams_and_errors_propagate() -> None:
    async def good() -> Any:
        yield chunk(delta(content="hi", finish="stop"))

    async def broken() -> Any:
        yield chunk(delta(content="hi"))
        raise RuntimeError("cut")

    assert (await aggregate_stream(good())).choices[0].message.content == "hi"
    with pytest.raises(RuntimeError, match="cut"):
        await aggregate_stream(broken())
