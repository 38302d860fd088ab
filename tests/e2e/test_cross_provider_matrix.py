"""Issue 12, item 4: reasoning state survives any OpenAI-shaped client and any provider change.

A two-step tool loop is started on provider A (a tool call, with A's reasoning state: DeepSeek's
``reasoning_content``, Claude's signed ``thinking_blocks``, Gemini's ``extra_content`` thought
signature, Qwen's reasoning) and continued on provider B, for all 25 ordered pairs of openai,
deepseek, claude, gemini and qwen (same-provider pairs included), each on a current
thinking-capable model, against the strict fakes that model today's APIs (a request B's API would
refuse is a 400 there, and a 400 fails the test):

* the client **switches model** (it sends its history to B), or A fails with its provider's
  overload error (OpenAI 500, DeepSeek/Gemini/Qwen/Bedrock 503) and ``router.fallbacks`` sends
  the request to B (**fallback**; for A == B a standby model name of the same provider);
* the client **keeps everything** (``message.model_dump(exclude_none=True)``, as the openai SDK's
  ``.model_dump()``) or **drops unknown fields** (role, content, tool_calls only, as LangChain);
* both steps as **chat** or both as **stream** (the message accumulated from the deltas by the
  openai SDK's own ``ChatCompletionStreamState``, what its stream helpers use);
* over real sockets on both HTTP transports (the ``http_transport`` fixture).

Then a longer loop for every pair (parallel calls on A, parallel calls on B, the answer from A:
each provider meets its own turn and a foreign one in one request), and the two-step loops
(switching model) as an application does them with the official openai SDK against the gateway
(uvicorn on 127.0.0.1), the gateway's upstream calls on each transport.

The matrix and the gateway loops run on both transports, the longer loop on httpx (700 cases in
all): the fakes are served once per module and each case builds only a factory, so the file takes
about 50 s on two cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llm_factory_core import LLMFactory

from .matrix_fakes import PARALLEL, PROVIDERS, WEATHER, Upstream, assemble, drops_unknown_fields, served_upstreams

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
        # A really was asked (and failed with its overload error) before B answered.
        assert first.received - sent_before == (2 if a == b else 1)
    second.check_continuation(second.bodies()[-1], first, keeps)


def answered(assistant: dict[str, Any], keeps: bool) -> list[dict[str, Any]]:
    """The assistant turn as the client sends it back, and a result for each of its calls."""
    results = [{"role": "tool", "tool_call_id": c["id"], "content": RESULT} for c in assistant["tool_calls"]]
    return [assistant if keeps else drops_unknown_fields(assistant), *results]


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("keeps", [True, False], ids=["keeps-everything", "drops-unknown"])
@pytest.mark.parametrize("b", PROVIDERS)
@pytest.mark.parametrize("a", PROVIDERS)
async def test_parallel_calls_there_and_back(
    upstreams: dict[str, Upstream], a: str, b: str, keeps: bool, stream: bool
) -> None:
    """A longer loop: A calls two tools at once, B (by switching model) calls two more, and A
    answers from the whole history: each provider meets its own turn and a foreign one in the
    same request (Gemini 3 checks every step of the current turn; Claude's last tool turn is
    foreign; DeepSeek's tool stretch holds both turns). On httpx only: the transports are the
    same bytes as in the matrix above."""
    first, second = upstreams[a], upstreams[b]
    first.script_parallel_calls()
    second.script_parallel_calls()
    first.script_text(f"{a}: Paris 21 C, Rome 25 C.")
    async with factory(upstreams, "httpx", {}) as f:
        history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
        for model in (a, b):
            assistant = await ask(f, history, model, stream)
            assert [json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == list(PARALLEL)
            history += answered(assistant, keeps)
        answer = await ask(f, history, a, stream)
    assert answer["content"] == f"{a}: Paris 21 C, Rome 25 C."
    ids = [c["id"] for m in history for c in m.get("tool_calls") or []]
    assert len(set(ids)) == 4 and all(len(i) <= 40 for i in ids)
    first.check_own_first_turn(first.bodies()[-1])


# -- through the gateway, with the official openai SDK as the client -------------------------------


@pytest.fixture(scope="module", params=["aiohttp", "httpx"])
def gateway(request: pytest.FixtureRequest, servers: dict[str, Upstream]) -> Iterator[str]:
    """The gateway (uvicorn on 127.0.0.1) over one factory with the five models, its upstream
    calls on each HTTP transport; yields its ``/v1`` base URL."""
    # Imported here: the library matrix above needs only the core and the plugins.
    from llm_factory_server import create_app
    from tests.server.helpers import serving

    factory_ = factory(servers, str(request.param), {})
    with serving(create_app(factory_)) as server:
        yield f"{server.url}/v1"
    factory_.close()


async def sdk_ask(sdk: openai.AsyncOpenAI, messages: list[dict[str, Any]], model: str, stream: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "messages": messages, "tools": [WEATHER], "reasoning_effort": "medium"}
    if stream:
        # The SDK's own stream helper accumulates the deltas (its ChatCompletionStreamState).
        async with sdk.chat.completions.stream(**params) as events:
            async for _ in events:
                pass
            final = await events.get_final_completion()
        message: dict[str, Any] = final.choices[0].message.model_dump(exclude_none=True)
        return message
    reply = await sdk.chat.completions.create(**params)
    dumped: dict[str, Any] = reply.choices[0].message.model_dump(exclude_none=True)
    return dumped


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("keeps", [True, False], ids=["keeps-everything", "drops-unknown"])
@pytest.mark.parametrize("b", PROVIDERS)
@pytest.mark.parametrize("a", PROVIDERS)
async def test_through_the_gateway_with_the_openai_sdk(
    upstreams: dict[str, Upstream], gateway: str, a: str, b: str, keeps: bool, stream: bool
) -> None:
    """The same loop as an application using the openai SDK against the gateway does it: the
    reasoning state crosses the gateway's JSON and SSE both ways."""
    first, second = upstreams[a], upstreams[b]
    first.script_tool_call()
    second.script_text(f"{b}: 21 C and clear in Paris.")
    sdk = openai.AsyncOpenAI(api_key="client-key", base_url=gateway, max_retries=0)
    try:
        question = {"role": "user", "content": QUESTION}
        assistant = await sdk_ask(sdk, [question], a, stream)
        first.check_first_reply(assistant)
        history = [
            question,
            assistant if keeps else drops_unknown_fields(assistant),
            {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": RESULT},
        ]
        answer = await sdk_ask(sdk, history, b, stream)
    finally:
        await sdk.close()
    assert answer["content"] == f"{b}: 21 C and clear in Paris."
    second.check_continuation(second.bodies()[-1], first, keeps)
