"""Thought signatures across turns, over real sockets on each transport: short ids, Google's
``extra_content`` field, the process's memory for clients that drop it, old packed ids, and
Google's skip value for history Gemini never saw (the fake rejects what Gemini 3 rejects)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_factory_core import AllDeploymentsFailedError, BadRequestError
from llm_factory_core.providers import reasoning_memory

from .fake_gemini import Turn
from .fake_rules import SKIP_SIGNATURE
from .helpers import TOOLS, Env, message_from_stream

pytestmark = pytest.mark.anyio

GEMINI_3 = "gemini-3-flash-preview"


async def first_turn(env: Env, f: Any, *, stream: bool, question: str = "Weather in Tokyo?") -> dict[str, Any]:
    if stream:
        chunks = [c async for c in f.stream_async(question, tools=TOOLS)]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        return message_from_stream(chunks)
    result = await f.chat_async(question, tools=TOOLS)
    assert result.choices[0].finish_reason == "tool_calls"
    assert result.choices[0].message.content is None
    return result.choices[0].message.model_dump(exclude_none=True)


def history(assistant: dict[str, Any], question: str = "Weather in Tokyo?") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}, assistant]
    for call in assistant["tool_calls"]:
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'})
    return messages


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [GEMINI_3, "gemini-3.1-pro-preview", "gemini-2.5-flash"])
async def test_tool_loop_with_extra_content(env: Env, stream: bool, model: str) -> None:
    env.fake.add(Turn(calls=[("get_weather", {"city": "Tokyo"})]), Turn(text="It is 21 C in Tokyo."))
    async with env.factory(env.config(model=model)) as f:
        assistant = await first_turn(env, f, stream=stream)
        [call] = assistant["tool_calls"]
        issued = env.fake.issued_signatures["get_weather"]
        assert len(call["id"]) <= 40 and "~ts~" not in call["id"]
        assert call["extra_content"] == {"google": {"thought_signature": issued}}
        assert json.loads(call["function"]["arguments"]) == {"city": "Tokyo"}
        reasoning_memory.clear()  # the signature must come from extra_content here
        second = await f.chat_async(history(assistant), tools=TOOLS)
    assert second.choices[0].message.content == "It is 21 C in Tokyo."
    sent = env.fake.requests[-1].body["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}, "thoughtSignature": issued}
    ]
    assert sent[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_drops_extra_content_is_served_from_memory(env: Env, stream: bool) -> None:
    """LangChain and agent SDKs rebuild messages from known fields: only the id comes back."""
    env.fake.add(Turn(calls=[("get_weather", {"city": "Oslo"})]), Turn(text="Cold."))
    async with env.factory(env.config(model=GEMINI_3)) as f:
        assistant = await first_turn(env, f, stream=stream)
        for call in assistant["tool_calls"]:
            del call["extra_content"]
        await f.chat_async(history(assistant), tools=TOOLS)
    part = env.fake.requests[-1].body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == env.fake.issued_signatures["get_weather"]


async def test_only_the_first_call_of_a_parallel_batch_carries_a_signature(env: Env) -> None:
    env.fake.add(Turn(calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]), Turn(text="ok"))
    async with env.factory(env.config(model=GEMINI_3)) as f:
        assistant = await first_turn(env, f, stream=False, question="Paris and Rome?")
        first, second = assistant["tool_calls"]
        assert "extra_content" in first and "extra_content" not in second
        assert first["id"] != second["id"]
        await f.chat_async(history(assistant, "Paris and Rome?"), tools=TOOLS)
    model_parts = env.fake.requests[-1].body["contents"][1]["parts"]
    issued = first["extra_content"]["google"]["thought_signature"]
    assert issued in env.fake.all_signatures
    assert [p.get("thoughtSignature") for p in model_parts] == [issued, None]
    responses = env.fake.requests[-1].body["contents"][2]["parts"]
    assert [p["functionResponse"]["name"] for p in responses] == ["get_weather", "get_weather"]


FOREIGN: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "content": None,
        "thinking_blocks": [{"type": "thinking", "thinking": "Claude thought", "signature": "RXF1YWxseQ=="}],
        "tool_calls": [
            {"id": "toolu_01AbCdEf", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_01AbCdEf", "content": "sunny"},
]
"""A tool loop started on Claude: no signature anywhere, Claude's own fields on the message."""


@pytest.mark.parametrize("model", [GEMINI_3, "gemini-3.1-pro-preview", "gemini-2.5-pro"])
async def test_foreign_history_gets_the_skip_value(env: Env, model: str) -> None:
    async with env.factory(env.config(model=model)) as f:
        result = await f.chat_async(FOREIGN, tools=TOOLS)
    assert result.choices[0].message.content == "Hello from the fake"
    model_turn = env.fake.requests[-1].body["contents"][1]
    assert model_turn == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {}, "id": "toolu_01AbCdEf"},
                "thoughtSignature": SKIP_SIGNATURE,
            }
        ],
    }


async def test_without_the_skip_value_gemini_3_refuses_foreign_history(env: Env) -> None:
    """What the skip value is for: the fake, like Gemini 3, answers 400 (not failed over)."""
    configs = [env.config(model=GEMINI_3, missing_thought_signature=None), env.config("second", model=GEMINI_3)]
    async with env.factory(*configs) as f:
        with pytest.raises(BadRequestError, match="missing a thought_signature"):
            await f.chat_async(FOREIGN, tools=TOOLS)
    assert len(env.fake.requests) == 1


async def test_a_signature_gemini_never_issued_is_refused(env: Env) -> None:
    forged = [dict(m) for m in FOREIGN]
    forged[1] = {**forged[1], "tool_calls": [{**FOREIGN[1]["tool_calls"][0], "extra_content": {
        "google": {"thought_signature": "Zm9yZ2Vk"}}}]}  # fmt: skip
    async with env.factory(env.config(model=GEMINI_3)) as f:
        with pytest.raises(BadRequestError, match="Corrupted thought signature"):
            await f.chat_async(forged, tools=TOOLS)


async def test_old_packed_ids_still_decode(env: Env) -> None:
    env.fake.add(Turn(calls=[("get_weather", {"city": "Lima"})]), Turn(text="ok"))
    async with env.factory(env.config(model=GEMINI_3)) as f:
        assistant = await first_turn(env, f, stream=False)
        reasoning_memory.clear()
        call = assistant["tool_calls"][0]
        packed = f"call_{'0' * 24}~ts~{call.pop('extra_content')['google']['thought_signature']}"
        call["id"] = packed
        await f.chat_async(history(assistant), tools=TOOLS)
    sent = env.fake.requests[-1].body["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] == env.fake.issued_signatures["get_weather"]
    assert "id" not in sent[1]["parts"][0]["functionCall"]  # our own generated id is never sent
    assert "id" not in sent[2]["parts"][0]["functionResponse"]


async def test_a_forgotten_signature_falls_back_to_the_skip_value(env: Env) -> None:
    """Another process (or a restart) has no memory of the id: the documented fallback."""
    env.fake.add(Turn(calls=[("get_weather", {"city": "Oslo"})]), Turn(text="ok"))
    async with env.factory(env.config(model=GEMINI_3)) as f:
        assistant = await first_turn(env, f, stream=False)
        del assistant["tool_calls"][0]["extra_content"]
        reasoning_memory.clear()
        await f.chat_async(history(assistant), tools=TOOLS)
    assert env.fake.requests[-1].body["contents"][1]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE


async def test_only_the_current_turn_is_checked(env: Env) -> None:
    """An older turn's tool calls are not validated (a new user prompt started a new turn)."""
    older = [*FOREIGN, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Thanks!"}]
    async with env.factory(env.config(model=GEMINI_3, missing_thought_signature=None)) as f:
        result = await f.chat_async(older)
    assert result.choices[0].message.content == "Hello from the fake"


async def test_errors_name_the_rule_not_the_signature(env: Env) -> None:
    async with env.factory(env.config(model=GEMINI_3, missing_thought_signature=None), num_retries=0) as f:
        with pytest.raises((BadRequestError, AllDeploymentsFailedError)) as info:
            await f.chat_async(FOREIGN, tools=TOOLS)
    assert "thought-signatures" in str(info.value)
