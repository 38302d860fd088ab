"""Thinking-mode tool loops from any OpenAI client (finding 2): a client that drops
``reasoning_content`` (LangChain and the agent SDKs rebuild messages from known fields), and a
conversation that started on another provider. Against the strict fake (a tool stretch without
reasoning is DeepSeek's 400), streamed and not, over real sockets on both transports."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import LLMFactory

from .fake_deepseek import FakeDeepSeek
from .helpers import KEY, WEATHER, call_id, served, tool_call


async def ask(factory: LLMFactory, messages: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
    """One call as a LangChain-style client sees it: the assistant message rebuilt from role,
    content and tool calls only (``reasoning_content`` dropped)."""
    if not stream:
        message = (await factory.chat_async(messages, tools=WEATHER)).choices[0].message
        made = [c.model_dump(exclude_none=True) for c in message.tool_calls or []]
        return {"role": "assistant", "content": message.content, **({"tool_calls": made} if made else {})}
    text = ""
    calls: dict[int, dict[str, Any]] = {}
    async for chunk in factory.stream_async(messages, tools=WEATHER):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(
                    delta.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["function"]["name"] += delta.function.name or ""
                    call["function"]["arguments"] += delta.function.arguments or ""
    return {"role": "assistant", "content": text or None, **({"tool_calls": list(calls.values())} if calls else {})}


def assistants(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "assistant"]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_a_two_step_tool_loop_from_a_client_that_drops_reasoning(http_transport: str, stream: bool) -> None:
    first, second = call_id(), call_id()
    fake = FakeDeepSeek(keys=(KEY,))
    fake.add(reasoning="I need Paris first", text="", tool_calls=[tool_call(first)], finish_reason="tool_calls")
    fake.add(reasoning="Now Rome", text="", tool_calls=[tool_call(second, "Rome")], finish_reason="tool_calls")
    fake.add(reasoning="Both known", text="Paris is sunny, Rome rainy")
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris, then Rome?"}]
    async with served(fake, http_transport) as factory:
        for result in ("sunny", "rain", None):
            reply = await ask(factory, messages, stream)
            messages.append(reply)
            if result is None:
                break
            assert "reasoning_content" not in reply, "the client drops it"
            messages.append({"role": "tool", "tool_call_id": reply["tool_calls"][0]["id"], "content": result})
    assert messages[-1]["content"] == "Paris is sunny, Rome rainy"
    bodies = fake.bodies()
    assert len(bodies) == 3, "every step succeeded at once (the fake answers 400 to a stretch without reasoning)"
    # The full reasoning of each tool-call turn came back from the memory, by tool-call id.
    assert [m["reasoning_content"] for m in assistants(bodies[1])] == ["I need Paris first"]
    assert [m["reasoning_content"] for m in assistants(bodies[2])] == ["I need Paris first", "Now Rome"]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_started_on_another_provider_continues_on_deepseek(http_transport: str, stream: bool) -> None:
    """The history's tool-call turn came from elsewhere (Claude, Gemini, OpenAI): no reasoning
    DeepSeek knows, other providers' fields on it. DeepSeek, thinking, takes over the loop."""
    foreign, ours = call_id(), call_id()
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris, then Rome?"},
        {
            "role": "assistant",
            "content": None,
            "thinking_blocks": [{"type": "thinking", "thinking": "Paris first", "signature": "c2lnbmVk"}],
            "tool_calls": [{**tool_call(foreign), "extra_content": {"google": {"thought_signature": "c2ln"}}}],
        },
        {"role": "tool", "tool_call_id": foreign, "content": "sunny"},
    ]
    fake = FakeDeepSeek(keys=(KEY,))
    fake.add(
        reasoning="Paris done, Rome next", text="", tool_calls=[tool_call(ours, "Rome")], finish_reason="tool_calls"
    )
    fake.add(reasoning="Both known", text="Sunny, then rain")
    async with served(fake, http_transport) as factory:
        reply = await ask(factory, history, stream)
        history += [reply, {"role": "tool", "tool_call_id": ours, "content": "rain"}]
        final = await ask(factory, history, stream)
    assert final["content"] == "Sunny, then rain"
    first, second = fake.bodies()
    foreign_turn = assistants(first)[0]
    assert foreign_turn == {
        "role": "assistant",
        "content": None,
        "tool_calls": [tool_call(foreign)],
        "reasoning_content": "",
    }
    assert [m["reasoning_content"] for m in assistants(second)] == ["", "Paris done, Rome next"]
    assert "thinking_blocks" in history[2], "the caller's history is not changed"


@pytest.mark.anyio
async def test_a_history_the_gateway_forgot_still_goes_through(http_transport: str) -> None:
    """Reasoning the memory never saw (another gateway process, a restart): the empty reasoning
    is sent, never a 400. With thinking disabled for the call nothing is added at all."""
    forgotten = call_id()
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [tool_call(forgotten)], "reasoning_content": None},
        {"role": "tool", "tool_call_id": forgotten, "content": "sunny"},
    ]
    fake = FakeDeepSeek(keys=(KEY,))
    async with served(fake, http_transport) as factory:
        thinking = await factory.chat_async(history, tools=WEATHER)
        plain = await factory.chat_async(history, tools=WEATHER, reasoning_effort="none")
    assert thinking.choices[0].message.content == plain.choices[0].message.content == "Hello from DeepSeek"
    first, second = fake.bodies()
    assert first["messages"][1]["reasoning_content"] == ""
    assert second["thinking"] == {"type": "disabled"} and "reasoning_effort" not in second
    assert "reasoning_content" not in second["messages"][1]
