"""Issue 12, item 4: reasoning state survives any OpenAI-shaped client and any provider change.

A two-step tool loop is started on provider A (a tool call, with A's reasoning state: DeepSeek's
``reasoning_content``, Claude's signed ``thinking_blocks``, Gemini's ``extra_content`` thought
signature, Qwen's reasoning) and continued on provider B, for all 25 ordered pairs of openai,
deepseek, claude, gemini and qwen (same-provider pairs included), each on a current
thinking-capable model, against the strict fakes that model today's APIs (a request B's API would
refuse is a 400 there, and a 400 fails the test):

* the client **switches model** (it sends its history to B), or A fails with its provider's
  overload error and ``router.fallbacks`` sends the request to B (**fallback**; for A == B a
  standby model name of the same provider);
* the client **keeps everything** (``message.model_dump(exclude_none=True)``, as the openai SDK's
  ``.model_dump()``) or **drops unknown fields** (role, content, tool_calls only, as LangChain);
* both steps as **chat** or both as **stream** (the message assembled from deltas);
* over real sockets on both HTTP transports.

All 400 cases run on each transport: the servers start once per module and each case builds only
a factory, so the file stays well under a minute on two cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from llm_factory_core import LLMFactory

from .matrix_fakes import PROVIDERS, WEATHER, Upstream, assemble, drops_unknown_fields, served_upstreams

pytestmark = pytest.mark.anyio

QUESTION = "What is the weather in Paris?"
RESULT = json.dumps({"temp_c": 21, "sky": "clear"})


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Upstream]]:
    with served_upstreams() as upstreams:
        yield upstreams


@pytest.fixture
def upstreams(servers: dict[str, Upstream]) -> dict[str, Upstream]:
    for upstream in servers.values():
        upstream.reset()
    return servers


def factory(upstreams: dict[str, Upstream], transport: str, fallbacks: dict[str, list[str]]) -> LLMFactory:
    """One factory, one model name per provider (and a standby name where a fallback stays on the
    same provider), every deployment on its fake. No retries, no cooldown: a failure goes straight
    to the fallback."""
    configs = [u.config(u.name) for u in upstreams.values()]
    configs += [upstreams[name.removesuffix("-standby")].config(name) for f in fallbacks.values() for name in f]
    return LLMFactory(
        configs,
        transport=transport,
        fallbacks=fallbacks,
        num_retries=0,
        cooldown=0.0,
        retry_backoff=0.0,
        strategy="first_available",
    )


async def ask(f: LLMFactory, messages: list[dict[str, Any]], model: str, stream: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "tools": [WEATHER], "reasoning_effort": "medium"}
    if stream:
        return assemble([c async for c in f.stream_async(messages, **params)])
    reply = await f.chat_async(messages, **params)
    return reply.choices[0].message.model_dump(exclude_none=True)


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("route", ["switch", "fallback"])
@pytest.mark.parametrize("keeps", [True, False], ids=["keeps-everything", "drops-unknown"])
@pytest.mark.parametrize("b", PROVIDERS)
@pytest.mark.parametrize("a", PROVIDERS)
async def test_a_tool_loop_continues_on_another_provider(
    upstreams: dict[str, Upstream], a: str, b: str, keeps: bool, route: str, stream: bool, http_transport: str
) -> None:
    first, second = upstreams[a], upstreams[b]
    target = b if a != b else f"{b}-standby"
    fallbacks = {a: [target]} if route == "fallback" else {}
    first.script_tool_call()
    if route == "fallback":
        first.script_failure()
    second.script_text(f"{b}: 21 C and clear in Paris.")
    async with factory(upstreams, http_transport, fallbacks) as f:
        question = {"role": "user", "content": QUESTION}
        assistant = await ask(f, [question], a, stream)
        first.check_first_reply(assistant)
        sent_before = first.received
        history = [
            question,
            assistant if keeps else drops_unknown_fields(assistant),
            {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": RESULT},
        ]
        answer = await ask(f, history, b if route == "switch" else a, stream)
    assert answer["content"] == f"{b}: 21 C and clear in Paris."
    assert "tool_calls" not in answer
    if route == "fallback":
        # A really was asked (and failed) before B answered.
        assert first.received > sent_before
    second.check_continuation(second.bodies()[-1], first, keeps)
