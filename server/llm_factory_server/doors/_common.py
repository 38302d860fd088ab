"""What every door does first: check access, read the JSON object body; how it answers an error
(OpenAI's envelope, pre-encoded); how it records a call; and how a dialect door (Messages,
Responses) relays a committed stream as SSE events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from llm_factory_core import AsyncChatStream, ChatCompletionChunk, CompletionUsage, LLMFactoryError
from llm_factory_core.providers import json_dumps as dumps

from .._access import check_access
from .._errors import ErrorReply, simple
from .._gateway import Gateway, gateway_for

__all__ = [
    "JSON",
    "DialectEvents",
    "Posted",
    "StreamEnd",
    "bounded_body",
    "finish",
    "first_chunk",
    "json_object",
    "read_post",
    "relay",
    "reply",
    "start",
]

JSON = "application/json"


def reply(error: ErrorReply) -> Response:
    status, body, headers = error
    return Response(body, status_code=status, media_type=JSON, headers={k.decode(): v.decode() for k, v in headers})


async def start(request: Request, *, post: bool) -> tuple[Gateway, Response | None]:
    """The gateway, and an error reply when the caller may not use this route."""
    gateway = gateway_for(request.app)
    denied = check_access(gateway, request.scope["headers"], post=post)
    return gateway, None if denied is None else reply(denied)


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (read no further than that)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


async def json_object(request: Request) -> tuple[dict[str, Any], int] | Response:
    """The body as a JSON object (at most ``server.max_body_bytes``) and its size in bytes, or
    the 413 / 400 reply saying what is wrong with it."""
    limit = gateway_for(request.app).settings.max_body_bytes
    raw = await bounded_body(request, limit)
    if raw is None:
        message = f"The request body is larger than this gateway accepts ({limit} bytes; server.max_body_bytes)."
        return reply(simple(413, message, "invalid_request_error", "request_too_large"))
    try:
        body = json.loads(raw)
    except ValueError:
        return reply(simple(400, "The body is not valid JSON.", "invalid_request_error", "invalid_json"))
    if not isinstance(body, dict):
        return reply(simple(400, "The body must be a JSON object.", "invalid_request_error", "invalid_json"))
    return body, len(raw)


class Posted(NamedTuple):
    gateway: Gateway
    body: dict[str, Any]
    size: int
    """The body's bytes: what a stream that ends before its usage is billed by (``ops.admit``)."""


async def read_post(request: Request) -> Posted | Response:
    """The gateway and the JSON object body of a POST, or the reply refusing it (access first:
    a caller who may not post learns nothing about the body)."""
    gateway, denied = await start(request, post=True)
    if denied is not None:
        return denied
    read = await json_object(request)
    if isinstance(read, Response):
        return read
    return Posted(gateway, *read)


def finish(
    gateway: Gateway,
    ticket: Any,
    chat: Any,
    deployment: str | None,
    status: int,
    started: float,
    usage: Any,
    *,
    stream: bool = False,
    chunks: int = 0,
) -> None:
    """Record one call of a dialect door (usage, status, latency) against its ``ops`` ticket."""
    gateway.ops.finish(
        ticket,
        model=chat.model,
        deployment=deployment,
        stream=stream,
        status=status,
        latency=time.monotonic() - started,
        usage=usage,
        streamed_chunks=chunks,
    )


# -- dialect streams ------------------------------------------------------------------------------


async def first_chunk(stream: AsyncChatStream) -> ChatCompletionChunk | None:
    """The stream's first chunk, or None when it ends at once. The router yields nothing before
    the first content, so a failure here is still a plain error reply: the stream is closed and
    the error raised for the door to answer."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
    except LLMFactoryError:
        await stream.aclose()
        raise


class DialectEvents(Protocol):
    """A dialect's event codec (``MessagesEventStream``, ``ResponsesEventStream``)."""

    def start(self) -> list[dict[str, Any]]: ...
    def feed(self, chunk: ChatCompletionChunk) -> list[dict[str, Any]]: ...
    def finish(self) -> list[dict[str, Any]]: ...


class StreamEnd(NamedTuple):
    """How a relayed stream ended, for its usage record."""

    status: int
    """200, the failure's status, or 499 when the client left first (billed for what it was sent)."""
    deployment: str | None
    usage: CompletionUsage | None
    chunks: int
    """Chunks relayed, the first included (as the chat door counts them)."""


def _frames(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + str(e["type"]).encode() + b"\ndata: " + dumps(e) + b"\n\n" for e in events)


def relay(
    stream: AsyncChatStream,
    first: ChatCompletionChunk | None,
    events: DialectEvents,
    headers: dict[str, str],
    *,
    fail: Callable[[LLMFactoryError], tuple[int, list[dict[str, Any]]]],
    record: Callable[[StreamEnd], None],
    after: Callable[[], Awaitable[None]] | None = None,
) -> StreamingResponse:
    """A committed stream as the dialect's SSE events. One loop for every dialect door so they
    keep the streaming contract alike: a failure after the first content ends the stream with
    the dialect's error events from ``fail`` (its status and events), never a clean end; ``after``
    runs once the finish events are sent; however it ends, the stream is closed and ``record``ed."""

    async def frames() -> AsyncIterator[bytes]:
        status, chunks, usage = 499, int(first is not None), first.usage if first is not None else None
        try:
            out = events.start()
            if first is not None:
                out += events.feed(first)
            yield _frames(out)
            try:
                async for chunk in stream:
                    chunks += 1
                    if chunk.usage is not None:
                        usage = chunk.usage
                    out = events.feed(chunk)
                    if out:
                        yield _frames(out)
            except LLMFactoryError as exc:  # committed: the stream ends with the error, never cleanly
                status, out = fail(exc)
                yield _frames(out)
                return
            status = 200
            yield _frames(events.finish())
            if after is not None:
                await after()
        finally:
            await stream.aclose()
            record(StreamEnd(status, stream.deployment, usage, chunks))

    sse_headers = {"cache-control": "no-cache", "x-accel-buffering": "no", **headers}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=sse_headers)
