"""Extended thinking: signed blocks in the OpenAI shape and back, reasoning_effort as Claude's own
control, max_tokens and pause_turn. Against the strict fakes (which verify every signature and
reject a tool-use turn without its thinking), over real sockets on both transports."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

from llm_factory_claude._codec import encode_messages_request
from llm_factory_claude._decode import MessagesStreamState, decode_message
from llm_factory_claude._thinking import MEMORY_KIND
from llm_factory_core import ChatCompletionChunk, ChatRequest
from llm_factory_core.providers import reasoning_memory

from .fake_claude import FakeAnthropic, Reply, message_json, sign_thinking, stream_events
from .helpers import (
    OLD_MODEL,
    OPUS_46,
    PROFILE_ARN,
    WEATHER_TOOL,
    anthropic_config,
    bedrock_config,
    bedrock_fake,
    served,
    session_config,
)

REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB4URj"


def tool_reply(call_id: str) -> Reply:
    return Reply(
        blocks=[
            {"type": "thinking", "thinking": "The user wants Paris weather; I should call the tool."},
            {"type": "redacted_thinking", "data": REDACTED},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}},
        ],
        stop_reason="tool_use",
    )


def expected_blocks() -> list[dict[str, Any]]:
    text = "The user wants Paris weather; I should call the tool."
    return [
        {"type": "thinking", "thinking": text, "signature": sign_thinking(text)},
        {"type": "redacted_thinking", "data": REDACTED},
    ]


def hosts() -> list[Any]:
    return [
        pytest.param(bedrock_fake, lambda: session_config(model=PROFILE_ARN), id="bedrock-opus-4.5-arn"),
        pytest.param(bedrock_fake, lambda: bedrock_config(model=OPUS_46), id="bedrock-opus-4.6"),
        pytest.param(FakeAnthropic, anthropic_config, id="anthropic-sonnet-4.5"),
    ]


def test_a_reply_s_thinking_is_decoded_and_remembered() -> None:
    call_id = "toolu_" + uuid.uuid4().hex[:20]
    completion = decode_message(message_json(tool_reply(call_id), "m", bedrock=False), model="m")
    message = completion.choices[0].message
    assert message.get("reasoning_content") == "The user wants Paris weather; I should call the tool."
    assert message.get("thinking_blocks") == expected_blocks()
    assert reasoning_memory.recall(MEMORY_KIND, call_id) == expected_blocks()


def test_a_stream_s_thinking_arrives_as_text_and_whole_blocks() -> None:
    call_id = "toolu_" + uuid.uuid4().hex[:20]
    events = stream_events(tool_reply(call_id), "m", bedrock=True)
    assert any((e.get("delta") or {}).get("type") == "signature_delta" for e in events)
    state = MessagesStreamState("m", include_usage=False)
    chunks = [c for e in events for c in state.feed(e)]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == expected_blocks()[0]["thinking"]
    # Each whole block with its place in the turn: list deltas of dicts need an ``index``.
    indexed = [{**b, "index": i} for i, b in enumerate(expected_blocks())]
    assert [b for d in deltas for b in d.get("thinking_blocks") or []] == indexed
    assert reasoning_memory.recall(MEMORY_KIND, call_id) == expected_blocks()
    # The openai SDK's stream helpers accumulate them (without the index they raise
    # "Expected list delta entry to have an `index` key" at the second block).
    sdk = ChatCompletionStreamState()
    for chunk in chunks:
        sdk.handle_chunk(OpenAIChunk.model_validate(chunk.model_dump(exclude_none=True)))
    message = sdk.current_completion_snapshot.choices[0].message.model_dump(exclude_none=True)
    assert message["thinking_blocks"] == indexed


def second_turn(first: dict[str, Any], *, keep_blocks: bool) -> list[dict[str, Any]]:
    """The history a client sends back: the whole message, or only OpenAI's own fields (LangChain,
    agent SDKs drop the rest)."""
    assistant = first if keep_blocks else {k: first[k] for k in ("role", "content", "tool_calls")}
    call_id = first["tool_calls"][0]["id"]
    return [
        {"role": "user", "content": "Weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 21}'},
    ]


def from_chunks(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """An assistant message rebuilt from stream deltas, as an OpenAI client does (plus the blocks)."""
    message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [], "thinking_blocks": []}
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            message["content"] += delta.content or ""
            message["thinking_blocks"] += delta.get("thinking_blocks") or []
            for call in delta.tool_calls or []:
                if call.id:
                    message["tool_calls"].append(
                        {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": ""}}
                    )
                if call.function and call.function.arguments:
                    message["tool_calls"][call.index]["function"]["arguments"] += call.function.arguments
    return message


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("keep_blocks", [True, False], ids=["client-keeps-blocks", "client-drops-blocks"])
@pytest.mark.parametrize(("make_fake", "make_config"), hosts())
async def test_thinking_and_tool_use_round_trip(
    make_fake: Any, make_config: Any, keep_blocks: bool, stream: bool, http_transport: str
) -> None:
    fake = make_fake()
    call_id = "toolu_" + uuid.uuid4().hex[:20]
    fake.script.extend([tool_reply(call_id), Reply.text("21C in Paris.")])
    params: dict[str, Any] = {"tools": [WEATHER_TOOL], "reasoning_effort": "medium"}
    async with served(fake, [make_config()], http_transport) as f:
        if stream:
            first = from_chunks([c async for c in f.stream_async("Weather in Paris?", **params)])
        else:
            first = (await f.chat_async("Weather in Paris?", **params)).choices[0].message.model_dump(exclude_none=True)
        assert [{k: v for k, v in b.items() if k != "index"} for b in first["thinking_blocks"]] == expected_blocks()
        reply = await f.chat_async(second_turn(first, keep_blocks=keep_blocks), **params)
    assert reply.choices[0].message.content == "21C in Paris."
    assistant = fake.bodies[-1]["messages"][1]["content"]
    # Rebuilt unchanged (the fake checks each signature against its text) and first in the turn.
    assert assistant[:2] == expected_blocks()
    assert [b["type"] for b in assistant[2:]] == ["text", "tool_use"]


@pytest.mark.anyio
async def test_a_foreign_tool_turn_turns_thinking_off_instead_of_a_400(
    http_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A tool loop begun on another provider has no Claude thinking blocks: Anthropic would answer
    400 "Expected `thinking` or `redacted_thinking`, but found `text`"; thinking is off for it."""
    fake = bedrock_fake()
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "(another provider's reasoning: no signature)",
            "tool_calls": [
                {
                    "id": "call_" + uuid.uuid4().hex[:20],
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    # Gemini's signature carrier: another provider's field, never forwarded.
                    "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}},
                }
            ],
        },
    ]
    history.append({"role": "tool", "tool_call_id": history[1]["tool_calls"][0]["id"], "content": "21"})
    async with served(fake, [bedrock_config()], http_transport) as f:
        with caplog.at_level(logging.WARNING, logger="llm_factory_claude"):
            reply = await f.chat_async(history, tools=[WEATHER_TOOL], reasoning_effort="high")
    assert reply.choices[0].message.content == "Hello from fake Claude"
    body = fake.bodies[-1]
    assert "thinking" not in body and body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {
            "type": "tool_use",
            "id": history[1]["tool_calls"][0]["id"],
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
    ]
    assert "no Claude thinking blocks" in caplog.text


def test_the_fake_rejects_that_turn_with_anthropic_s_message() -> None:
    from .fake_claude import check_body

    body = encode_messages_request(
        ChatRequest(messages=[{"role": "user", "content": "x"}], reasoning_effort="high"),
        allow_image_urls=False,
        model="claude-sonnet-4-5",
    )
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    problem = check_body(body, "claude-sonnet-4-5", bedrock=False)
    assert problem is not None
    assert problem.startswith("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "effort", "max_tokens", "thinking", "output_config", "sent_max"),
    [
        # Opus 4.6: adaptive thinking, effort as output_config.effort (xhigh -> max on Opus 4.6).
        (OPUS_46, "high", None, {"type": "adaptive"}, {"effort": "high"}, 32_000),
        (OPUS_46, "xhigh", None, {"type": "adaptive"}, {"effort": "max"}, 32_000),
        (OPUS_46, "minimal", None, {"type": "adaptive"}, {"effort": "low"}, 32_000),
        ("us.anthropic.claude-sonnet-4-6", "max", None, {"type": "adaptive"}, {"effort": "high"}, 32_000),
        # Budget models: thinking.enabled, max_tokens raised above the budget (the answer keeps its room).
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "high", 1000, {"type": "enabled", "budget_tokens": 16_384},
         None, 17_384),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "low", None,
         {"type": "enabled", "budget_tokens": 2048}, None, 32_000),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "max", None, {"type": "enabled", "budget_tokens": 27_904},
         None, 32_000),
        # none: no thinking; a model without thinking: the rule drops reasoning_effort.
        (OPUS_46, "none", None, None, None, 32_000),
        (OLD_MODEL, "high", None, None, None, 8192),
    ],
)  # fmt: skip
async def test_reasoning_effort_becomes_claude_s_control(
    model: str,
    effort: str,
    max_tokens: int | None,
    thinking: dict[str, Any] | None,
    output_config: dict[str, Any] | None,
    sent_max: int,
    http_transport: str,
) -> None:
    fake = bedrock_fake()
    params: dict[str, Any] = {"reasoning_effort": effort}
    if max_tokens:
        params["max_tokens"] = max_tokens
    async with served(fake, [bedrock_config(model=model)], http_transport) as f:
        await f.chat_async("Think.", **params)
    body = fake.bodies[-1]
    assert body.get("thinking") == thinking
    assert body.get("output_config") == output_config
    assert body["max_tokens"] == sent_max


@pytest.mark.anyio
async def test_a_caller_s_thinking_budget_and_deployment_max_tokens_are_reconciled(http_transport: str) -> None:
    """``budget_tokens`` must stay below ``max_tokens`` (the fake answers 400 otherwise): the
    deployment's small default and a caller's own ``thinking`` meet without a 400."""
    fake = FakeAnthropic()
    async with served(fake, [anthropic_config(default_max_tokens=2000)], http_transport) as f:
        await f.chat_async("Think.", extra_body={"thinking": {"type": "enabled", "budget_tokens": 8000}})
        await f.chat_async("Think.", thinking={"type": "enabled", "budget_tokens": 4000}, max_tokens=1000)
    first, second = fake.bodies
    assert first["thinking"]["budget_tokens"] == 8000 and first["max_tokens"] == 10_000
    assert second["thinking"]["budget_tokens"] == 4000 and second["max_tokens"] == 5000


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "expected"),
    [(OPUS_46, 32_000), (OLD_MODEL, 8192), ("anthropic.claude-3-haiku-20240307-v1:0", 4096)],
)
async def test_default_max_tokens_follows_the_model(model: str, expected: int) -> None:
    body = encode_messages_request(
        ChatRequest(messages=[{"role": "user", "content": "x"}]), allow_image_urls=False, model=model
    )
    assert body["max_tokens"] == expected


@pytest.mark.anyio
async def test_pause_turn_is_a_stop_that_says_so(http_transport: str) -> None:
    fake = FakeAnthropic()
    fake.script.append(Reply.text("Searching...", stop_reason="pause_turn"))
    fake.script.append(Reply.text("Searching...", stop_reason="pause_turn"))
    async with served(fake, [anthropic_config()], http_transport) as f:
        reply = await f.chat_async("Search the web.")
        chunks = [c async for c in f.stream_async("Search the web.")]
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].get("stop_reason") == "pause_turn"
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert last.choices[0].finish_reason == "stop" and last.choices[0].get("stop_reason") == "pause_turn"
    assert last.model_dump(exclude_none=True)["choices"][0]["stop_reason"] == "pause_turn"


@pytest.mark.anyio
async def test_an_unknown_reasoning_effort_is_a_clear_bad_request(http_transport: str) -> None:
    from llm_factory_core import BadRequestError

    fake = bedrock_fake()
    async with served(fake, [bedrock_config(model=OPUS_46)], http_transport) as f:
        with pytest.raises(BadRequestError, match="reasoning_effort must be one of none, minimal"):
            await f.chat_async("Hi", reasoning_effort="ultra")
    assert fake.bodies == []


def test_blocks_lead_a_turn_merged_from_several_assistant_messages() -> None:
    """Some clients split an assistant reply into a text message and a tool-call message: the
    merged turn still starts with its thinking; a turn already led by thinking is kept as sent."""
    blocks = expected_blocks()
    call = {"id": "toolu_x", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    request = ChatRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Checking."},
                {"role": "assistant", "content": None, "tool_calls": [call], "thinking_blocks": blocks},
                {"role": "tool", "tool_call_id": "toolu_x", "content": "21"},
            ],
            "reasoning_effort": "low",
        }
    )
    body = encode_messages_request(request, allow_image_urls=False, model="claude-sonnet-4-5")
    assert [b["type"] for b in body["messages"][1]["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
    ]
    raw = [blocks[0], {"type": "tool_use", "id": "t1", "name": "f", "input": {}}, blocks[1]]
    request = ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": raw}]}
    )
    body = encode_messages_request(request, allow_image_urls=False, model="claude-sonnet-4-5")
    assert body["messages"][1]["content"] == raw
