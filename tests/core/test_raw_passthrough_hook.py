"""``raw_passthrough(data, state)``: each plain event reaches exactly one of it and ``adapt_chunk``,
with the stream's own state (a provider's subclass, passed to ``decode_stream``); a plugin written
against the first published form, ``raw_passthrough(self, data)``, keeps working."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from llm_factory_core._raw_sse import RAW_SSE, RawChunk
from llm_factory_core.providers import OpenAICompatibleProvider, OpenAIStreamState, ProviderSettings

BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps({**BASE, **e}).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


BODY = sse(
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": USAGE},
)


class WatchingState(OpenAIStreamState):
    __slots__ = ("adapted", "forwarded")

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.forwarded: list[Any] = []
        self.adapted: list[Any] = []


class Watching(OpenAICompatibleProvider):
    key = "watching"
    raw_sse = True

    def raw_passthrough(self, data: dict[str, Any], state: OpenAIStreamState) -> bool:
        assert isinstance(state, WatchingState)
        if data.get("usage"):
            return False
        state.forwarded.append(data["choices"][0]["finish_reason"])
        return True

    def adapt_chunk(self, data: dict[str, Any], state: OpenAIStreamState) -> Any:
        assert isinstance(state, WatchingState)
        state.adapted.append(data.get("usage"))
        return super().adapt_chunk(data, state)


class FirstPublished(OpenAICompatibleProvider):
    key = "first-published"
    raw_sse = True

    def raw_passthrough(self, data: dict[str, Any]) -> bool:  # type: ignore[override]
        return not data.get("usage")


def provider(cls: type[OpenAICompatibleProvider]) -> OpenAICompatibleProvider:
    return cls(ProviderSettings(model="m"), client=httpx.AsyncClient(), name=f"{cls.key}/m#0")


async def raw(p: OpenAICompatibleProvider, state: OpenAIStreamState | None = None) -> list[RawChunk]:
    token = RAW_SSE.set(True)
    try:
        return [c async for c in p.decode_stream(httpx.Response(200, content=BODY), state)]  # type: ignore[misc]
    finally:
        RAW_SSE.reset(token)


@pytest.mark.anyio
async def test_each_event_reaches_one_hook_with_the_streams_own_state() -> None:
    state = WatchingState("m")
    chunks = await raw(provider(Watching), state)
    assert state.forwarded == [None, "stop"] and state.adapted == [USAGE]
    assert b"".join(c.data() for c in chunks).startswith(BODY.split(b"\n\n")[0])  # forwarded as sent


@pytest.mark.anyio
async def test_the_parsed_path_gives_the_same_state_to_adapt_chunk() -> None:
    state = WatchingState("m")
    chunks = [c async for c in provider(Watching).decode_stream(httpx.Response(200, content=BODY), state)]
    assert len(chunks) == 3 and state.adapted == [None, None, USAGE] and state.forwarded == []


@pytest.mark.anyio
async def test_a_hook_without_the_state_argument_still_decides() -> None:
    chunks = await raw(provider(FirstPublished))
    usage_events = [c for c in chunks if c.usage_frame is not None]
    assert len(usage_events) == 1 and b'"total_tokens":4' in usage_events[0].usage_frame  # re-serialised
    assert chunks[0].frames[0] == BODY.split(b"\n\n")[0] + b"\n\n"  # the others as sent
