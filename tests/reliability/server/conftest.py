"""The gateway over a ``FaultyUpstream``: the library scenarios again, end to end through uvicorn on
127.0.0.1, driven by the official ``openai`` SDK and by raw HTTP.

``call(server, via, mode)`` asks ``primary`` once and returns a ``Reply`` whatever happened, so a
test asserts on what a client saw: the status, the text, the model, usage, the error envelope or
SSE error event, and (raw HTTP) whether the stream ended with ``[DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from llm_factory_core import LLMFactory
from llm_factory_server import ServerSettings, create_app
from tests.server.helpers import ServerThread

from ..conftest import PROMPT, expected_text, make_factory

__all__ = ["Reply", "assert_answered_by", "assert_stream_broke", "call"]

LOOP = "auto"
"""uvicorn's loop for these tests: its default (uvloop when installed), as in production. uvloop's
millisecond timers end a cooldown wait a hair early; ``tests/reliability/test_cooldown_wait.py``
pins that the router copes."""

VIA = ["sdk-chat", "sdk-stream", "http-chat", "http-stream"]
"""Client and mode: the openai SDK or raw HTTP, streaming or not."""


@dataclass
class Reply:
    """What a client of the gateway saw."""

    status: int
    text: str = ""
    model: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    """The error envelope's ``error`` (a JSON reply, or an SSE error event after the 200)."""
    done: bool | None = None
    """Raw HTTP streams: whether ``data: [DONE]`` ended it (None: unknown, the SDK hides it)."""
    events: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)


def _body(mode: str, model: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if mode == "stream":
        body.update(stream=True, stream_options={"include_usage": True})
    body.update(extra or {})
    return body


def parse_sse(reply: Reply, raw: str) -> None:
    """Fill ``reply`` from a raw SSE body; strict about framing: every event is one ``data:``
    line, ``[DONE]`` is the last event, an error event is the last event."""
    assert raw.endswith("\n\n"), f"the stream does not end on an event boundary: {raw[-80:]!r}"
    for event in raw[:-2].split("\n\n"):
        assert event.startswith("data: ") and "\n" not in event, f"unexpected SSE framing: {event!r}"
        reply.events.append(event[6:])
    for i, data in enumerate(reply.events):
        last = i == len(reply.events) - 1
        if data == "[DONE]":
            assert last, "[DONE] must be the last event"
            reply.done = True
            continue
        obj = json.loads(data)
        if "error" in obj:
            assert last, "an error event must end the stream"
            reply.error = obj["error"]
            continue
        reply.ids.add(obj["id"])
        reply.model = obj.get("model", reply.model)
        reply.usage = obj.get("usage") or reply.usage
        for choice in obj["choices"]:
            reply.text += choice["delta"].get("content") or ""
            reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
    reply.done = bool(reply.done)


def http_call(
    server: ServerThread,
    mode: str,
    model: str = "primary",
    extra: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> Reply:
    with httpx.Client(timeout=timeout) as client:
        response = client.post(f"{server.url}/v1/chat/completions", json=_body(mode, model, extra), headers=headers)
    reply = Reply(response.status_code, headers=dict(response.headers))
    content_type = response.headers.get("content-type", "")
    if response.status_code != 200:
        assert content_type.startswith("application/json")
        reply.error = response.json()["error"]
        return reply
    if mode == "stream":
        assert content_type.startswith("text/event-stream")
        parse_sse(reply, response.text)
        return reply
    data = response.json()
    reply.model, reply.usage = data["model"], data.get("usage")
    reply.text = data["choices"][0]["message"]["content"]
    reply.finish_reason = data["choices"][0]["finish_reason"]
    reply.ids.add(data["id"])
    return reply


def sdk_call(
    server: ServerThread, mode: str, model: str = "primary", extra: dict[str, Any] | None = None, timeout: float = 15.0
) -> Reply:
    body = _body(mode, model, None)
    with openai.OpenAI(api_key="any", base_url=f"{server.url}/v1", max_retries=0, timeout=timeout) as sdk:
        reply = Reply(200)
        try:
            if mode == "chat":
                completion = sdk.chat.completions.create(**body, extra_body=extra)
                reply.model = completion.model
                reply.usage = completion.usage.model_dump() if completion.usage else None
                reply.text = completion.choices[0].message.content or ""
                reply.finish_reason = completion.choices[0].finish_reason
                reply.ids.add(completion.id)
                return reply
            for chunk in sdk.chat.completions.create(**body, extra_body=extra):
                reply.ids.add(chunk.id)
                reply.model = chunk.model
                if chunk.usage is not None:
                    reply.usage = chunk.usage.model_dump()
                for choice in chunk.choices:
                    reply.text += choice.delta.content or ""
                    reply.finish_reason = choice.finish_reason or reply.finish_reason
        except openai.APIStatusError as exc:
            reply.status = exc.status_code
            reply.error = exc.body if isinstance(exc.body, dict) else {"message": str(exc)}
        except openai.APIError as exc:  # an error event inside the 200 stream
            assert isinstance(exc.body, dict), exc
            reply.error = exc.body
        return reply


def call(server: ServerThread, via: str, model: str = "primary", extra: dict[str, Any] | None = None) -> Reply:
    client, mode = via.split("-")
    if client == "sdk":
        return sdk_call(server, mode, model, extra)
    return http_call(server, mode, model, extra)


def assert_answered_by(reply: Reply, model: str) -> None:
    """A complete answer from ``model``, naming it, with usage; raw streams end with [DONE]."""
    assert reply.error is None and reply.status == 200, reply
    assert reply.text == expected_text(model)
    assert reply.model == model
    assert reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage["completion_tokens"] > 0
    assert reply.usage["total_tokens"] == reply.usage["prompt_tokens"] + reply.usage["completion_tokens"]
    assert reply.done in (None, True)
    assert len(reply.ids) == 1


def assert_stream_broke(reply: Reply, partial: str) -> None:
    """A committed stream that broke: 200, the partial text, then an explicit error, never [DONE]."""
    assert reply.status == 200
    assert reply.text == partial
    assert reply.error is not None and reply.error.get("message"), reply
    assert reply.done in (None, False)
    assert reply.finish_reason is None


def words(model: str, n: int) -> str:
    return "".join(w + " " for w in expected_text(model).split(" ")[:n])


@pytest.fixture(params=VIA)
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Serve = Callable[..., ServerThread]


def app_closing(factory: LLMFactory, **settings: Any) -> Any:
    """The gateway app around ``factory``, closing the factory's connections of the server's loop
    when the server stops. (A gateway does not close a factory it was handed, and
    ``factory.close()`` from the test thread cannot reach that loop's pool once the loop is gone:
    its keep-alive sockets to the upstream would be left open.)"""
    app = create_app(factory, settings=ServerSettings(**settings))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            yield state
        await factory.aclose()

    app.router.lifespan_context = lifespan
    return app


@pytest.fixture
def serve(upstream: Any) -> Iterator[Serve]:
    """``serve(**router)``: the gateway over ``primary`` + ``backup`` on the fake upstream;
    ``serve(factory=...)`` for a factory of the test's own."""
    started: list[tuple[ServerThread, LLMFactory]] = []

    def start(
        *, factory: LLMFactory | None = None, timeouts: dict[str, float] | None = None, **router: Any
    ) -> ServerThread:
        factory = factory or make_factory(upstream.base_url, timeouts=timeouts, **router)
        server = ServerThread(app_closing(factory), loop=LOOP).start()
        started.append((server, factory))
        return server

    yield start
    for server, factory in started:
        server.stop()
        factory.close()
