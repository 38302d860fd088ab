"""``POST /chat/completions``: the hot path, written as a plain ASGI endpoint.

No FastAPI parameter solving or response re-validation: the body is validated once by pydantic's
Rust JSON parser straight into ``ChatRequest``, and replies are pydantic's Rust JSON bytes, framed
as SSE where needed. A task watches for the client going away and cancels the upstream call at once,
before or after the stream commits (a cancelled attempt is not the deployment's fault).

Streaming follows the core's contract: the HTTP status is chosen only after the first content chunk
(until then a failure is an ordinary JSON error with its status); a failure after that ends the
stream with ``data: {"error": {...}}`` and no ``[DONE]``, so no client mistakes it for a clean end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import anyio
from pydantic import ValidationError

from llm_factory_core import CallInfo, ChatCompletion, ChatCompletionChunk, ChatRequest, LLMFactoryError
from llm_factory_core.providers import json_dumps as dumps

from ._access import check_access
from ._errors import ErrorReply, error_body, from_exception, from_validation_error, simple
from ._gateway import Gateway, access_log, gateway_for
from ._log_output import line_sink
from ._passthrough import RAW_REPLY, RAW_SSE, SPLICE, ClientSink, RawChunk, RawCompletion, raw_frame, wants_raw
from ._protocol import SPLICE_EXTENSION, ResponseSplice
from ._tracing import OVERHEAD_HEADER, TRACED

__all__ = ["ChatCompletions"]

log = logging.getLogger("llm_factory_server")

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
]
_DONE = b"data: [DONE]\n\n"
_INTERNAL = error_body("The gateway failed unexpectedly; its log has the details.", "server_error")
_CLIENT_CLOSED = 499  # nginx's convention for "client closed the request", in logs and metrics


class _Disconnected(Exception):
    pass


class _TooLarge(Exception):
    pass


class _Record:
    """What the request log line and metrics need; one small object per request."""

    __slots__ = (
        "attempts",
        "chunks",
        "committed",
        "deployment",
        "failed",
        "model",
        "overhead",
        "prompt",
        "reply",
        "rid",
        "started",
        "status",
        "stream",
        "strip_usage",
        "ticket",
        "ttft",
        "upstream",
        "usage",
    )

    def __init__(self, rid: bytes, started: float) -> None:
        self.rid = rid
        self.started = started
        self.model: str | None = None
        self.stream = False
        self.status = 200
        self.committed = False
        """True once the 200 and the stream's headers are sent."""
        self.deployment: str | None = None
        self.usage: tuple[int, int] | None = None
        self.ticket: Any = None
        """Who called and what they used (``ops.Ticket``); None until admitted."""
        self.chunks = 0
        self.strip_usage = False
        """The usage chunk was asked upstream for the usage records, not by the client: not sent."""
        self.ttft: float | None = None
        self.attempts = 0
        self.failed = 0
        """Of ``attempts``, those that failed (a broken stream's included)."""
        self.reply: list[str] | None = None
        """Reply text, collected only when ``log_content`` is on."""
        self.prompt: bytes | None = None
        self.upstream = 0.0
        """Seconds spent waiting on upstream attempts (a stream's: until its first content)."""
        self.overhead: float | None = None
        """Seconds the gateway itself took until the reply's start (``overhead_header``)."""


def _request_id(value: bytes | None) -> bytes:
    # A caller's id is echoed only when it is short and printable: it ends up in log lines.
    if value and len(value) <= 128 and all(33 <= c < 127 for c in value):
        return value
    return b"%016x" % random.getrandbits(64)  # an id, not a secret: no system call per request


async def _read_body(receive: Any, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the common case: one message, no copy
        if len(body) > limit:
            raise _TooLarge
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class _Departure:
    """Cancels the request's task when its client goes away; ``left`` once it did.

    Under the gateway's own server the connection says so itself (``ResponseSplice.on_disconnect``,
    called from the protocol's ``connection_lost``): no task per request. Under any other ASGI
    server a task waits on ``receive()`` for ``http.disconnect``."""

    __slots__ = ("_connection", "_task", "_watcher", "left")

    def __init__(self, scope: dict[str, Any], receive: Any, task: asyncio.Task[Any], loop: Any) -> None:
        self.left = False
        self._task = task
        self._watcher: asyncio.Task[None] | None = None
        extensions = scope.get("extensions")
        self._connection = extensions.get(SPLICE_EXTENSION) if extensions else None
        if self._connection is not None:
            self._connection.on_disconnect(self._gone)
        else:
            self._watcher = loop.create_task(self._watch(receive))

    def _gone(self) -> None:
        self.left = True
        self._task.cancel()

    async def _watch(self, receive: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._gone()
                return

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.on_disconnect(None)
        elif self._watcher is not None:
            self._watcher.cancel()


def overhead_header(record: _Record) -> tuple[bytes, bytes]:
    """The gateway's own time so far: since the endpoint got the request, minus the time spent
    waiting on upstream attempts; taken just before the reply's status and headers are sent."""
    record.overhead = overhead = max(0.0, time.monotonic() - record.started - record.upstream)
    return OVERHEAD_HEADER, b"%.3f" % (overhead * 1000)


async def _send_json(
    send: Any,
    status: int,
    body: bytes,
    record: _Record,
    extra: list[tuple[bytes, bytes]],
    connection: ResponseSplice | None,
) -> None:
    headers = [_JSON, (b"content-length", b"%d" % len(body)), (b"x-request-id", record.rid), *extra]
    headers.append(overhead_header(record))
    if connection is not None and connection.respond(status, headers, body):
        return  # one write for head and body (``ResponseSplice.respond``)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _own_connection(scope: dict[str, Any], send: Any) -> ResponseSplice | None:
    """The server's ``ResponseSplice`` for this response, None when there is none or a middleware
    wraps ``send`` (then everything must go through it)."""
    extensions = scope.get("extensions")
    connection = extensions.get(SPLICE_EXTENSION) if extensions else None
    return connection if connection is not None and connection.serves(send) else None


def _usage(obj: Any) -> tuple[int, int] | None:
    usage = obj.usage
    return None if usage is None else (usage.prompt_tokens, usage.completion_tokens)


class ChatCompletions:
    """The ASGI endpoint; mounted by ``router`` at ``/chat/completions``."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        gateway = gateway_for(scope["app"])
        if gateway.tracing is not None and TRACED not in scope:  # off: this check is all tracing costs
            return await gateway.tracing.serve(self, scope, receive, send)
        started = time.monotonic()
        rid = length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                rid = value
            elif key == b"content-length":
                length = value
        record = _Record(_request_id(rid), started)
        try:
            reply = await self._handle(gateway, scope, receive, send, record, length)
        except _Disconnected:
            record.status = _CLIENT_CLOSED
            reply = None
        except Exception:  # a bug must still answer in OpenAI's envelope, also in a host app
            log.exception("request %s failed unexpectedly", record.rid.decode())
            reply = None if record.committed else (500, _INTERNAL, [])
            record.status = 500
        if reply is not None:
            record.status = reply[0]
            await _send_json(send, reply[0], reply[1], record, reply[2], _own_connection(scope, send))
        self._finish(gateway, record)

    async def _handle(
        self,
        gateway: Gateway,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        record: _Record,
        length: bytes | None,
    ) -> ErrorReply | None:
        """Returns an error reply to send, or None when the reply was already sent."""
        if (denied := check_access(gateway, scope["headers"], post=True)) is not None:
            return denied
        limit = gateway.settings.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            return _too_large(limit)
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            return _too_large(limit)
        try:
            request = ChatRequest.model_validate_json(body)
        except ValidationError as exc:
            return from_validation_error(exc)
        record.model = request.model or gateway.factory.router.default_model
        record.stream = request.stream
        ticket = await gateway.ops.admit(scope["headers"], record.model, "chat", len(body))
        if isinstance(ticket, tuple):
            return ticket
        record.ticket = ticket
        if request.stream and not request.include_usage:  # the records need the usage chunk
            request.stream_options = {**(request.stream_options or {}), "include_usage": True}
            record.strip_usage = True
        if gateway.settings.log_content:
            record.reply = []
            record.prompt = dumps(request.messages)
        # Plain asyncio rather than an anyio cancel scope: one loop lookup instead of four (each a
        # system call on Python 3.11) on every request. uvicorn always runs us on asyncio.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        departure = _Departure(scope, receive, task, loop)
        try:
            if request.stream:
                reply = await self._stream(gateway, request, send, record, scope)
            else:
                reply = await self._chat(gateway, request, record)
        except asyncio.CancelledError:
            if not departure.left or task.uncancel() > 0:
                raise  # not (only) the client leaving: the server is shutting down
            record.status = _CLIENT_CLOSED
            return None
        finally:
            departure.stop()
        if departure.left:
            # The client left, yet the reply is ready (something below swallowed the cancellation,
            # or it is still pending: Python 3.11's uncancel does not clear it). Take it back and
            # let any pending one land here, harmlessly.
            task.uncancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            record.status = _CLIENT_CLOSED
            return None
        return reply

    async def _chat(self, gateway: Gateway, request: ChatRequest, record: _Record) -> ErrorReply:
        factory = gateway.factory
        info = CallInfo()
        raw = RAW_REPLY.set(True) if wants_raw(gateway) else None  # the pass-through (``_raw_reply``)
        try:
            result: ChatCompletion | RawCompletion = await factory.router.chat(request, factory.providers(), info=info)
        except LLMFactoryError as exc:
            record.attempts = record.failed = len(info.attempts)
            record.upstream = info.upstream
            return from_exception(exc)
        finally:
            if raw is not None:
                RAW_REPLY.reset(raw)
        record.upstream = info.upstream
        record.attempts, record.failed = len(info.attempts) + 1, len(info.attempts)
        record.deployment = result.deployment
        if isinstance(result, RawCompletion):  # the upstream's bytes, forwarded as they are
            record.usage = result.usage
            record.ticket.usage = result.usage_object()
            if record.reply is not None:
                record.reply.extend(result.texts)
            return 200, result.body, []
        record.usage = _usage(result)
        record.ticket.usage = result.usage
        if record.reply is not None:
            record.reply.extend(c.message.content or "" for c in result.choices)
        return 200, result.__pydantic_serializer__.to_json(result, exclude_none=True), []

    async def _stream(
        self, gateway: Gateway, request: ChatRequest, send: Any, record: _Record, scope: dict[str, Any]
    ) -> ErrorReply | None:
        factory = gateway.factory
        info = CallInfo()
        chunks = factory.router.stream(request, factory.providers(), info=info)
        raw = RAW_SSE.set(True) if wants_raw(gateway) else None  # the pass-through (``_passthrough``)
        spliced = None
        broken = False
        try:
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                first = None
            except LLMFactoryError as exc:
                record.upstream = info.upstream
                return from_exception(exc)
            # Committed: from here on the status is 200 and failures travel inside the stream.
            record.deployment = info.deployment.name if info.deployment else None
            if info.first_token_at is not None:
                record.ttft = info.first_token_at - record.started
            record.upstream = info.upstream
            headers = [*_SSE_HEADERS, (b"x-request-id", record.rid), overhead_header(record)]
            reply = record.reply
            frame = _frame(first, record, reply) if first is not None else b""
            target = _own_connection(scope, send)
            record.committed = True
            # The head and the first frame in one write where the server allows it.
            if target is None or not target.respond(200, headers, frame, more_body=True):
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                if frame:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            try:
                if target is not None and raw is not None:
                    spliced = SPLICE.set(ClientSink(target, record, reply))  # the rest skips this loop
                async for chunk in chunks:
                    if frame := _frame(chunk, record, reply):
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
            except Exception as exc:
                if isinstance(exc, LLMFactoryError):
                    broken = True  # the router recorded the answering deployment's failure
                    record.status = exc.http_status
                    body = from_exception(exc)[1]
                    log.warning("request %s: stream failed after it started: %s", record.rid.decode(), exc)
                else:
                    record.status = 500
                    body = _INTERNAL
                    log.exception("request %s: stream failed unexpectedly", record.rid.decode())
                await send({"type": "http.response.body", "body": b"data: " + body + b"\n\n", "more_body": False})
                return None
            await send({"type": "http.response.body", "body": _DONE, "more_body": False})
            return None
        finally:
            # A stream that broke after it started is in ``info.attempts`` already: count it once.
            record.attempts = len(info.attempts) + (info.deployment is not None and not broken)
            record.failed = len(info.attempts)
            if getattr(chunks, "ag_frame", True) is not None:  # run to its end: nothing to close
                with anyio.CancelScope(shield=True):
                    await chunks.aclose()  # at once, also on cancellation: the connection goes back to the pool
            if spliced is not None:
                SPLICE.reset(spliced)
            if raw is not None:
                RAW_SSE.reset(raw)

    def _finish(self, gateway: Gateway, record: _Record) -> None:
        duration = time.monotonic() - record.started
        if record.ticket is not None:
            gateway.ops.finish(
                record.ticket,
                model=record.model,
                deployment=record.deployment,
                stream=record.stream,
                status=record.status,
                latency=duration,
                usage=record.ticket.usage,
                streamed_chunks=record.chunks,
            )
        model = gateway.metrics.model_label(record.model)
        gateway.metrics.observe(
            model,
            record.stream,
            record.status,
            duration,
            deployment=record.deployment,
            ttft=record.ttft,
            usage=record.usage,
            failed_attempts=record.failed,
            overhead=record.overhead,
        )
        if gateway.settings.log_requests and access_log.isEnabledFor(logging.INFO):
            usage = record.usage
            args = (
                record.rid.decode(),
                record.model,
                "true" if record.stream else "false",
                record.deployment or "-",
                record.status,
                duration * 1000,
                f"{record.ttft * 1000:.1f}" if record.ttft is not None else "-",
                f"{usage[0]}/{usage[1]}" if usage else "-",
                record.attempts,
                _content(record),
            )
            if (sink := line_sink(access_log)) is not None:
                sink.add_info_line(_ACCESS_LINE % args)  # ``llm-factory serve``'s own handler: no LogRecord
            else:
                access_log.info(_ACCESS_LINE, *args)


_ACCESS_LINE = "%s model=%r stream=%s deployment=%s status=%d latency_ms=%.1f ttft_ms=%s tokens=%s attempts=%d%s"


def _frame(chunk: ChatCompletionChunk | RawChunk, record: _Record, reply: list[str] | None) -> bytes:
    if isinstance(chunk, RawChunk):  # upstream bytes, forwarded as they are (``_passthrough``)
        return raw_frame(chunk, record, reply)
    record.chunks += 1
    if chunk.usage is not None:
        record.usage = _usage(chunk)
        record.ticket.usage = chunk.usage
        if record.strip_usage and not chunk.choices:
            return b""
    if reply is not None:
        reply.extend(c.delta.content or "" for c in chunk.choices)
    return b"data: " + chunk.__pydantic_serializer__.to_json(chunk, exclude_none=True) + b"\n\n"


def _too_large(limit: int) -> ErrorReply:
    return simple(
        413,
        f"The request body is larger than this gateway accepts ({limit} bytes; server.max_body_bytes).",
        "invalid_request_error",
        "request_too_large",
    )


def _content(record: _Record) -> str:
    if record.reply is None or record.prompt is None:
        return ""
    return f" messages={record.prompt.decode()} reply={''.join(record.reply)!r}"
