"""POST /v1/chat/completions through real clients: the openai SDK (sync, async, streaming),
langchain-openai's ChatOpenAI, and raw HTTP for the exact SSE bytes."""

from __future__ import annotations

import json
import threading

import anyio
import httpx
import pytest
from langchain_openai import ChatOpenAI

from llm_factory_core.testing import openai_chunks, sse_body

from .conftest import Serve
from .helpers import ServerThread, Upstream, async_client, client, deployment, make_factory

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_openai_sdk_sync(gateway: ServerThread, upstream: Upstream) -> None:
    reply = client(gateway).chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.2)
    assert reply.choices[0].message.content == "Hello from upstream"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens == 21
    sent = upstream.bodies()[0]
    assert sent["messages"] == MESSAGES and sent["temperature"] == 0.2 and "stream" not in sent


@pytest.mark.anyio
async def test_openai_sdk_async_and_streaming(gateway: ServerThread) -> None:
    sdk = async_client(gateway)
    reply = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from upstream"
    stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello!"
    await sdk.close()


def test_openai_sdk_stream_with_usage(gateway: ServerThread, upstream: Upstream) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert upstream.bodies()[0]["stream_options"] == {"include_usage": True}


def test_exact_sse_bytes(gateway: ServerThread) -> None:
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        raw = response.read()
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    payloads = [json.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert all(e.startswith(b"data: {") for e in events[:-2])
    expected = openai_chunks(["Hel", "lo", "!"])
    # An OpenAI upstream's plain chunks pass through byte for byte (server/_passthrough.py): its
    # nulls (logprobs, refusal, finish_reason) included, as OpenAI itself sends them.
    assert [p["choices"] for p in payloads] == [c["choices"] for c in expected]
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}


def _without_nulls(chunks: list[dict]) -> list[dict]:
    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(c) for c in chunks]  # type: ignore[misc]


def test_unknown_fields_and_strategy(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream, deployment("a"), deployment("b")))
    sdk = client(server)
    for _ in range(2):
        sdk.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            extra_body={"load_balance_strategy": "first_available", "vendor_flag": {"x": 1}},
        )
    # first_available: both went to the first deployment; the routing field never goes upstream
    assert [r.url.host for r in upstream.requests] == ["a.test", "a.test"]
    sent = upstream.bodies()[0]
    assert sent["vendor_flag"] == {"x": 1} and "load_balance_strategy" not in sent
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"load_balance_strategy": "round_robin"})
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"load_balance_strategy": "round_robin"})
    assert {r.url.host for r in upstream.requests[2:]} == {"a.test", "b.test"}


def test_langchain_chat_openai(gateway: ServerThread) -> None:
    llm = ChatOpenAI(model="gpt-4o", api_key="any-key", base_url=f"{gateway.url}/v1", max_retries=0)
    assert llm.invoke("Say hello").content == "Hello from upstream"
    assert "".join(str(c.content) for c in llm.stream("Say hello")) == "Hello!"


def test_each_chunk_is_forwarded_as_it_arrives(upstream: Upstream, serve: Serve) -> None:
    """The upstream sends its second piece only once the client holds the first: a gateway that
    buffered would never deliver it and the client's read would time out."""
    gate = threading.Event()
    chunks = openai_chunks(["first", "second"])

    def held_stream(request: httpx.Request) -> httpx.Response:
        async def body():  # type: ignore[no-untyped-def]
            yield sse_body(chunks[:2], done=False)
            while not gate.is_set():
                await anyio.sleep(0.005)
            yield sse_body(chunks[2:])

        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    upstream.script("a", held_stream)
    server = serve(make_factory(upstream))
    seen: list[str] = []
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                seen.append(delta.get("content") or "")
                if delta.get("content") == "first":
                    gate.set()
            elif line == "data: [DONE]":
                seen.append("[DONE]")
    assert seen == ["", "first", "second", "", "[DONE]"]


def test_default_model_when_omitted(gateway: ServerThread, upstream: Upstream) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": MESSAGES})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello from upstream"
