"""What a reply is read into: ``Whole`` (all of it, within its caps) and ``Http1Body`` (a stream,
read by a task or spliced into a callback inside each socket read)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx

from .._bounded import once, read_capped, too_large
from ._connection import Connection, Sink

if TYPE_CHECKING:
    from .._aiohttp import Flow

__all__ = ["Http1Body", "Whole"]

_HIGH_WATER = 256 * 1024
"""Body bytes a streamed reply buffers for a reader that is behind before its socket pauses."""


class Whole(Sink):
    """A whole reply, read to its end: ``max_body`` bytes at most (over: ``LimitExceeded``), an
    error reply's first ``max_error_body`` (the rest is not read, the connection dropped)."""

    __slots__ = ("_cap", "_conn", "_error_cap", "_size", "body", "done", "encoding", "raw_headers", "status")

    def __init__(self, conn: Connection, done: asyncio.Future[None], max_body: int, max_error_body: int) -> None:
        self._conn = conn
        self.done = done
        self._cap = max_body
        self._error_cap = max_error_body
        self._size = 0
        self.body: list[bytes] = []
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.encoding: str | None = None

    def headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.raw_headers = headers
        if status >= 400:
            self._cap = self._error_cap
        for name, value in headers:
            if len(name) == 16 and name.lower() == b"content-encoding":
                self.encoding = value.decode("latin-1")

    def feed(self, data: bytes) -> None:
        self.body.append(data)
        self._size += len(data)
        if self._size > self._cap:
            self._conn.drop()
            if self.status >= 400:  # the status is the error; its first bytes are enough
                self.done.set_result(None)
            else:
                self.done.set_exception(too_large("the upstream reply", "max_response_bytes", self._cap))

    def end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    async def content(self) -> bytes:
        """The body, decoded (within the same caps) if the upstream compressed it anyway."""
        failed = self.status >= 400
        raw = b"".join(self.body)
        if self.encoding is None:
            return raw[: self._cap] if failed else raw
        return await read_capped(
            once(raw),
            self.encoding,
            self._cap,
            "max_error_body_bytes" if failed else "max_response_bytes",
            truncate=failed,
        )


class Http1Body(httpx.AsyncByteStream, Sink):
    """A streamed reply: its status and headers once in (``ready``), then its body, read
    (``raw_chunks``) or spliced (``splice``), one piece per socket read. Closing it before the
    end drops the connection."""

    __slots__ = (
        "_buffer",
        "_conn",
        "_done",
        "_error",
        "_finished",
        "_flow",
        "_loop",
        "_on_data",
        "_size",
        "_waiter",
        "_waiting_flow",
        "raw_headers",
        "ready",
        "received",
        "status",
    )

    can_splice = True

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn: Connection | None = conn
        self._loop = loop
        self.ready: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._buffer: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._on_data: Callable[[bytes], bool] | None = None
        self._flow: Flow | None = None
        self._finished: asyncio.Future[None] | None = None
        self._waiting_flow = False
        self.received = 0

    # -- from the connection ----------------------------------------------------------------------

    def headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.raw_headers = headers
        self.ready.set_result(None)

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self._on_data is not None:
            self._spliced(data)
            return
        self._buffer.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def end(self) -> None:
        self._done = True
        self._conn = None
        self._settle(None)
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self._conn = None
        if not self.ready.done():
            self.ready.set_exception(exc)
            self._done = True
            return
        self._error = exc
        self._settle(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read -------------------------------------------------------------------------------------

    def _take(self) -> bytes:
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        self._size = 0
        if self._conn is not None:
            self._conn.resume()
        return data

    async def raw_chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._buffer:
                yield self._take()
                continue
            if self._error is not None:
                raise self._error
            if self._done:
                return
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.raw_chunks():
            yield chunk

    # -- splice -----------------------------------------------------------------------------------

    async def splice(self, on_data: Callable[[bytes], bool], flow: Flow) -> None:
        """Hand each read of the body to ``on_data`` as it arrives, inside the connection's
        ``data_received`` (no task wakes per read), until the body ends, ``on_data`` returns True
        (it needs no more) or raises (raised here). Reading stops while ``flow.paused()`` and
        resumes on its ``when_writable`` callback. Failures raise after the bytes that arrived
        before them; cancelling stops the splice at once."""
        self._flow = flow
        self._on_data = on_data
        finished = self._finished = self._loop.create_future()
        try:
            if self._buffer:  # what arrived before the splice began
                self._spliced(self._take())
            else:
                self._follow_flow()  # a reader full already
            if not finished.done():
                if self._error is not None:
                    raise self._error
                if self._done:
                    return
            await finished
        finally:
            self._on_data = self._finished = None
            if self._waiting_flow:
                self._waiting_flow = False
                flow.when_writable(None)
                if self._conn is not None:
                    self._conn.resume()

    def _spliced(self, data: bytes) -> None:
        assert self._on_data is not None and self._flow is not None
        try:
            if self._on_data(data):
                self._settle(None)
                return
        except BaseException as exc:  # the consumer's error ends the splice; the connection never sees it
            self._settle(exc)
            return
        if not self._waiting_flow and self._flow.paused():  # the usual read: one check
            self._follow_flow()

    def _follow_flow(self) -> None:
        conn = self._conn
        if conn is not None and not self._waiting_flow and self._flow is not None and self._flow.paused():
            # The socket alone is paused; the client's writable callback resumes it.
            self._waiting_flow = True
            conn.pause()
            self._flow.when_writable(self._resume)

    def _resume(self) -> None:
        self._waiting_flow = False
        if self._conn is not None:
            self._conn.resume()

    def _settle(self, exc: BaseException | None) -> None:
        finished = self._finished
        self._on_data = None
        if finished is not None and not finished.done():
            if exc is None:
                finished.set_result(None)
            else:
                finished.set_exception(exc)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not self._done:
            conn.drop()  # a reply not read to its end: never drained, never reused
        self._done = True
        self._buffer.clear()
