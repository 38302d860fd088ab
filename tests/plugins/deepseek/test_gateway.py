"""The OpenAI SDK -> the llm-factory gateway -> the DeepSeek fake, over real sockets on both HTTP
transports: a thinking-mode tool loop driven by a client that keeps only what the SDK types know
(``reasoning_content`` is not among them), streamed and not; ``extra_body`` and the token field as
a gateway user sends them. Needs the server distribution (skipped without it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llm_factory_core import LLMFactory
from llm_factory_core.testing import serve_handler

from .fake_deepseek import FakeDeepSeek
from .helpers import KEY, WEATHER, call_id, deepseek, tool_call

TOOLS: Any = WEATHER

server = pytest.importorskip("llm_factory_server")
helpers = pytest.importorskip("tests.server.helpers")


@pytest.fixture
def fake() -> FakeDeepSeek:
    return FakeDeepSeek(keys=(KEY,))


@pytest.fixture
def sdk(fake: FakeDeepSeek, http_transport: str) -> Iterator[openai.OpenAI]:
    with serve_handler(fake) as base:
        factory = LLMFactory([deepseek("deepseek-v4-pro", api_base=base)], transport=http_transport, num_retries=0)
        with (
            factory,
            helpers.serving(server.create_app(factory)) as running,
            openai.OpenAI(api_key="any-key", base_url=f"{running.url}/v1", max_retries=0) as client,
        ):
            yield client


def _assistant(message: Any) -> dict[str, Any]:
    """What a typed client keeps of a reply: role, content, tool calls."""
    calls = [{"id": c.id, "type": "function", "function": c.function.model_dump()} for c in message.tool_calls or []]
    return {"role": "assistant", "content": message.content, **({"tool_calls": calls} if calls else {})}


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_loop_through_the_gateway_with_a_client_that_drops_reasoning(
    fake: FakeDeepSeek, sdk: openai.OpenAI, stream: bool
) -> None:
    first = call_id()
    fake.add(reasoning="Look it up", text="", tool_calls=[tool_call(first)], finish_reason="tool_calls")
    fake.add(reasoning="Got it", text="Sunny")
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    for result in ("sunny", None):
        if stream:
            chunks: list[Any] = list(
                sdk.chat.completions.create(model="deepseek-v4-pro", messages=messages, tools=TOOLS, stream=True)
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = [
                    {"id": calls[0].id, "type": "function", "function": calls[0].function.model_dump()}
                ]
        else:
            reply = sdk.chat.completions.create(model="deepseek-v4-pro", messages=messages, tools=TOOLS)
            message = _assistant(reply.choices[0].message)
        messages.append(message)
        if result is not None:
            messages.append({"role": "tool", "tool_call_id": first, "content": result})
    assert messages[-1]["content"] == "Sunny"
    second = fake.bodies()[-1]["messages"]
    assert second[1]["tool_calls"][0]["id"] == first and second[1]["reasoning_content"] == "Look it up"


def test_extra_body_and_max_completion_tokens_through_the_gateway(fake: FakeDeepSeek, sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="deepseek-v4-pro",
        messages=[{"role": "user", "content": "Hi"}],
        max_completion_tokens=2,
        extra_body={"thinking": {"type": "disabled"}},
    )
    sent = fake.bodies()[-1]
    assert sent["thinking"] == {"type": "disabled"}
    assert sent["max_tokens"] == 2 and "max_completion_tokens" not in sent
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("Hello from", "length")
