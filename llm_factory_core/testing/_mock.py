"""Scripted fake upstreams on ``httpx.MockTransport`` and builders of OpenAI wire bodies."""

from __future__ import annotations

import inspect
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import anyio
import httpx

__all__ = [
    "MockUpstream",
    "json_response",
    "openai_chunks",
    "openai_completion",
    "sse_body",
    "sse_response",
]

Reply = httpx.Response | Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"] | BaseException


class MockUpstream:
    """A fake upstream for ``LLMFactory(transport=upstream.transport)``.

    Replies are queued (``upstream.add(reply, times=2)``) or chosen by a ``route`` function; a reply
    may be a response, a callable taking the request, or an exception to raise (a connection
    error). Every request is kept in ``requests`` for assertions.
    """

    def __init__(self, route: Callable[[httpx.Request], Any] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._queue: deque[Reply] = deque()
        self._route = route
        self.transport = httpx.MockTransport(self._handle)

    def add(self, reply: Reply, *, times: int = 1) -> MockUpstream:
        for _ in range(times):
            self._queue.append(reply)
        return self

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        reply: Any
        if self._queue:
            reply = self._queue.popleft()
        elif self._route is not None:
            reply = self._route
        else:
            raise AssertionError(f"MockUpstream: no reply queued for {request.method} {request.url}")
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply) and not isinstance(reply, httpx.Response):
            reply = reply(request)
            if inspect.isawaitable(reply):
                reply = await reply
        if isinstance(reply, BaseException):
            raise reply
        assert isinstance(reply, httpx.Response)
        return reply


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(data, ensure_ascii=False).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )


def openai_completion(
    text: str | None = "Hello!",
    *,
    model: str = "gpt-4o-2024-08-06",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] = (9, 12),
    id: str = "chatcmpl-123",
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        **extra,
    }


def openai_chunks(
    pieces: Iterable[str],
    *,
    model: str = "gpt-4o-2024-08-06",
    finish_reason: str | None = "stop",
    include_usage: bool = False,
    usage: tuple[int, int] = (9, 12),
    id: str = "chatcmpl-123",
) -> list[dict[str, Any]]:
    """The chunk sequence OpenAI streams: a role chunk, one chunk per piece, a finish chunk and,
    with ``include_usage``, a usage chunk with empty choices."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **({"usage": None} if include_usage else {}),
        }

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": piece}) for piece in pieces]
    if finish_reason is not None:
        out.append(chunk({}, finish_reason))
    if include_usage:
        out.append(
            {
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": sum(usage),
                },
            }
        )
    return out


def sse_body(events: Iterable[dict[str, Any] | str], *, done: bool = True) -> bytes:
    parts = [f"data: {e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)}\n\n" for e in events]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def sse_response(
    events: Iterable[dict[str, Any] | str],
    *,
    done: bool = True,
    delay: float = 0.0,
    status: int = 200,
    headers: dict[str, str] | None = None,
    fail_after: int | None = None,
) -> httpx.Response:
    """A streaming response; ``delay`` sleeps before each event; ``fail_after=n`` breaks the
    connection after n events (a cut stream)."""
    events = list(events)
    body = [sse_body([e], done=False) for e in events] + ([b"data: [DONE]\n\n"] if done else [])

    async def gen() -> AsyncIterator[bytes]:
        for i, part in enumerate(body):
            if fail_after is not None and i >= fail_after:
                raise httpx.ReadError("connection reset by peer")
            if delay:
                await anyio.sleep(delay)
            yield part

    return httpx.Response(status, content=gen(), headers={"content-type": "text/event-stream", **(headers or {})})
