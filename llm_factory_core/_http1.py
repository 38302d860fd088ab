"""A small HTTP/1.1 client on an asyncio protocol and httptools' parser: the fast path's calls.

A non-streamed call through aiohttp's session costs ~70 µs of CPU in aiohttp alone (its request
and response objects, tracing hooks, timers, header multidicts); the exchange itself, written
straight to a socket and parsed by httptools (llhttp, in C), costs ~12 (``bench/client_floor.py``).
So the fast transport sends its calls here, and keeps aiohttp for what this client leaves out:
proxies, streamed request bodies, ``HEAD``.

What it does: a pool of keep-alive connections per origin (``http`` and ``https``, TLS through the
event loop's ``ssl``), capped in all and per origin, the wait for a free connection bounded by the
``pool`` timeout; ``connect`` bounds opening a connection and ``read`` each wait for bytes, as
httpx's timeouts do. Failures are httpx's exceptions (a reset stays a connection error, a silence
a read timeout), so failover decisions do not change with the transport. A body is delivered once
per socket read (the HTTP chunks that arrived together as one piece), to a reader that awaits it
or, spliced, to a callback run inside the read (no task wakes per read).

A connection goes back to the pool only once its reply was read to the end and the upstream keeps
it alive; a reply abandoned half way closes its connection (never drained, never reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, NoReturn

import httptools
import httpx

from ._bounded import read_capped, too_large

if TYPE_CHECKING:
    from ._aiohttp import Flow

__all__ = ["Http1Body", "Http1Pool", "Target", "header_lines", "raw_header_lines", "target"]

_HIGH_WATER = 256 * 1024
"""Body bytes a streamed reply buffers for a reader that is behind before its socket pauses."""

_CACHED = 1024


class Target:
    """Where one method and URL go: the origin's pool key, how to connect, the request line."""

    __slots__ = ("host", "key", "line", "port", "server_hostname", "tls")

    def __init__(self, method: str, url: str) -> None:
        parsed = httpx.URL(url)  # httpx's escaping: both transports put the same bytes on the wire
        scheme = parsed.scheme
        if scheme not in ("http", "https") or not parsed.raw_host:
            raise httpx.UnsupportedProtocol(f"cannot send a request to {scheme!r} URLs (http or https only)")
        self.tls = scheme == "https"
        self.host = parsed.raw_host.decode("ascii")
        self.port = parsed.port or (443 if self.tls else 80)
        self.server_hostname = self.host if self.tls else None
        self.key = (scheme, self.host, self.port)
        self.line = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode("ascii"), parsed.raw_path, parsed.netloc)


_TARGETS: dict[tuple[str, str], Target] = {}


def target(method: str, url: str) -> Target:
    """``Target`` for ``method`` and ``url``, cached: a deployment calls the same few URLs."""
    key = (method, url)
    found = _TARGETS.get(key)
    if found is None:
        if len(_TARGETS) >= _CACHED:
            _TARGETS.clear()
        found = _TARGETS[key] = Target(method, url)
    return found


def header_lines(headers: Mapping[str, str]) -> bytes:
    """``headers`` as request header lines, each ending in CRLF."""
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if text.count("\n") != len(headers) or "\r" in text.replace("\r\n", "") or "\0" in text:
        _refuse(name for name, value in headers.items() if any(c in name + value for c in "\r\n\0"))
    return text.encode("utf-8")


_SET_HERE = frozenset((b"host", b"content-length", b"transfer-encoding"))


def raw_header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """httpx's raw request headers as header lines, but those this client sets itself."""
    kept = [(name, value) for name, value in headers if name.lower() not in _SET_HERE]
    data = b"".join([b"%s: %s\r\n" % pair for pair in kept])
    if data.count(b"\n") != len(kept) or b"\r" in data.replace(b"\r\n", b"") or b"\0" in data:
        _refuse(name.decode("latin-1") for name, value in kept if any(c in name + value for c in b"\r\n\0"))
    return data


def _refuse(bad: Iterator[str]) -> NoReturn:
    # The value may be a secret: name the header only.
    raise httpx.LocalProtocolError(f"header {next(bad)!r} contains a line break or NUL, which HTTP forbids")


class _Sink:
    """What a connection hands a reply to: its status and headers, its body per read, its end."""

    __slots__ = ()

    def headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    def feed(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def fail(self, exc: BaseException) -> None: ...


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time. httptools calls its ``on_*`` methods."""

    __slots__ = (
        "_complete",
        "_headers",
        "_headers_done",
        "_keep_alive",
        "_loop",
        "_parser",
        "_pieces",
        "_pool",
        "_timeout",
        "_watchdog",
        "closed",
        "idle_since",
        "key",
        "last",
        "paused",
        "sink",
        "transport",
    )

    def __init__(self, pool: Http1Pool, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.sink: _Sink | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._pieces: list[bytes] = []
        self._complete = False
        self._headers_done = self._keep_alive = False
        self._timeout: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.last = 0.0

    # -- the exchange -----------------------------------------------------------------------------

    def send(self, data: bytes, sink: _Sink, read_timeout: float | None) -> None:
        self.sink = sink
        self._headers = []
        self._complete = self._headers_done = False
        self.last = self._loop.time()
        if read_timeout:
            self._timeout = read_timeout
            self._watchdog = self._loop.call_at(self.last + read_timeout, self._check)
        assert self.transport is not None
        self.transport.write(data)

    def _check(self) -> None:
        self._watchdog = None
        timeout = self._timeout
        if self.sink is None or timeout is None:
            return
        now = self._loop.time()
        if self.paused:  # the reader's pause, not the upstream's silence
            self.last = now
        elif now - self.last >= timeout:
            self._abort(httpx.ReadTimeout(f"the upstream sent nothing for {timeout:g}s"))
            return
        self._watchdog = self._loop.call_at(self.last + timeout, self._check)

    def _finish(self) -> None:
        self.sink = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _abort(self, exc: BaseException) -> None:
        sink = self.sink
        self._finish()
        self.close()
        if sink is not None:
            sink.fail(exc)

    def close(self) -> None:
        """Drop the connection (a reply not read to its end, a failure, the pool closing)."""
        if not self.closed:
            self.closed = True
            self._pool.forget(self)
            if self.transport is not None:
                self.transport.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.last = self._loop.time()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # bytes nobody asked for: the connection is no longer usable
            self.close()
            return
        self.last = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._abort(httpx.RemoteProtocolError(f"the upstream sent invalid HTTP ({exc})"))
            return
        pieces = self._pieces
        if pieces:
            body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            pieces.clear()
            sink.feed(body)
            if self.sink is not sink:  # the reader failed or let go inside ``feed``
                return
        if self._complete:
            keep = self._keep_alive
            self._finish()
            self.resume()  # paused by a reader behind on the read that completed the reply
            sink.end()
            if keep and not self.closed:
                self._pool.release(self)
            else:
                self.close()

    def eof_received(self) -> bool:
        return False  # close: an HTTP/1.1 client never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self._pool.forget(self)
        self._parser = None  # type: ignore[assignment]  # it holds this protocol: no reference cycle
        sink = self.sink
        if sink is None:
            return
        self._finish()
        if was_closed:
            return  # we closed it; the sink already knows
        if isinstance(exc, OSError):
            sink.fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif self._until_close():
            sink.end()  # a reply framed by the connection's end ended
        else:
            sink.fail(httpx.RemoteProtocolError("the upstream closed the connection before the reply ended"))

    def _until_close(self) -> bool:
        """Whether the reply in flight (headers in) has no length and no chunks: its end is the
        connection's."""
        if not self._headers_done:
            return False
        return not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers)

    # -- httptools' callbacks ---------------------------------------------------------------------

    # A reply after the one asked for (in the same read) is never handed on, and its connection
    # is not reused; an interim reply (1xx: 103 Early Hints...) is skipped.

    def on_message_begin(self) -> None:
        if self._complete:
            self._keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if self._complete or status < 200:
            self._headers = []
            return
        self._headers_done = True
        assert self.sink is not None
        self.sink.headers(status, self._headers)

    def on_body(self, body: bytes) -> None:
        if not self._complete:
            self._pieces.append(body)

    def on_message_complete(self) -> None:
        if not self._headers_done or self._complete:  # an interim reply, or one after the end
            return
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()  # llhttp resets it once this returns

    def drop(self) -> None:
        """The reader let go before the reply's end: close, quietly (nobody is told)."""
        self._finish()
        self.close()


class _Whole(_Sink):
    """A whole reply, read to its end: ``max_body`` bytes at most (over: ``LimitExceeded``), an
    error reply's first ``max_error_body`` (the rest is not read, the connection dropped)."""

    __slots__ = ("_cap", "_conn", "_error_cap", "_size", "body", "done", "encoding", "raw_headers", "status")

    def __init__(self, conn: _Connection, done: asyncio.Future[None], max_body: int, max_error_body: int) -> None:
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
            _once(raw),
            self.encoding,
            self._cap,
            "max_error_body_bytes" if failed else "max_response_bytes",
            truncate=failed,
        )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Http1Body(httpx.AsyncByteStream, _Sink):
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

    def __init__(self, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn: _Connection | None = conn
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


class Http1Pool:
    """Keep-alive connections per origin, ``max_connections`` in all (0: no cap) and
    ``max_per_host`` to one origin (0: no cap), idle ones kept ``keepalive_expiry`` seconds.
    Bound to the event loop it is first used on (a later loop starts afresh)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_per_host: int,
        keepalive_expiry: float,
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._max = max_connections
        self._per_host = max_per_host
        self._expiry = keepalive_expiry
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open: dict[tuple[str, str, int], int] = {}
        self._counted: set[_Connection] = set()
        self._waiters: deque[tuple[tuple[str, str, int], asyncio.Future[None]]] = deque()

    # -- the calls --------------------------------------------------------------------------------

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
        *,
        max_body: int,
        max_error_body: int,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """POST and read the whole (decoded) reply: status, raw headers, body (see ``_Whole``)."""
        where = target("POST", url)
        head = where.line + header_lines(headers) + b"Content-Length: %d\r\n\r\n" % len(content)
        conn = await self.acquire(where, timeout)
        assert self._loop is not None
        whole = _Whole(conn, self._loop.create_future(), max_body, max_error_body)
        conn.send(head + content, whole, timeout.read)
        try:
            await whole.done
        except BaseException:
            if conn.sink is whole:  # cancelled mid-exchange
                conn.drop()
            raise
        return whole.status, whole.raw_headers, await whole.content()

    async def open(self, method: str, url: str, content: bytes, head_lines: bytes, timeout: httpx.Timeout) -> Http1Body:
        """Send, and return once the reply's headers are in; its body streams (close it)."""
        where = target(method, url)
        head = where.line + head_lines
        if content or method not in ("GET", "DELETE", "OPTIONS"):
            head += b"Content-Length: %d\r\n" % len(content)
        conn = await self.acquire(where, timeout)
        assert self._loop is not None
        body = Http1Body(conn, self._loop)
        conn.send(head + b"\r\n" + content, body, timeout.read)
        try:
            await body.ready
        except BaseException:
            if conn.sink is body:
                conn.drop()
            raise
        return body

    # -- the pool ---------------------------------------------------------------------------------

    async def acquire(self, where: Target, timeout: httpx.Timeout) -> _Connection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._rebind(loop)
        key = where.key
        conn = self._idle_connection(key, loop.time())
        if conn is not None:
            return conn
        if self._room(key, evict=True):
            return await self._connect(where, timeout.connect, loop)
        return await self._wait(where, timeout, loop)

    def _idle_connection(self, key: tuple[str, str, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if now - conn.idle_since < self._expiry and transport is not None and not transport.is_closing():
                return conn
            conn.close()  # expired (so are the older ones, closed as they come up) or closing
        return None

    def _room(self, key: tuple[str, str, int], *, evict: bool = False) -> bool:
        """Whether a new connection to ``key`` may open; with ``evict``, closing another
        origin's idle connection to make room in the total."""
        if self._per_host and self._open.get(key, 0) >= self._per_host:
            return False
        if not self._max or len(self._counted) < self._max:
            return True
        if evict:
            for other, idle in self._idle.items():
                if other != key and idle:
                    idle.popleft().close()
                    return True
        return False

    async def _connect(
        self, where: Target, connect_timeout: float | None, loop: asyncio.AbstractEventLoop
    ) -> _Connection:
        conn = _Connection(self, where.key, loop)
        self._counted.add(conn)
        self._open[where.key] = self._open.get(where.key, 0) + 1
        context = None
        if where.tls:
            context = self._ssl = self._ssl or self._ssl_factory()
        try:
            async with asyncio.timeout(connect_timeout):
                await loop.create_connection(
                    lambda: conn, where.host, where.port, ssl=context, server_hostname=where.server_hostname
                )
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"no connection to the upstream within {connect_timeout:g}s") from None
            if isinstance(exc, OSError):
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
            raise
        return conn

    async def _wait(self, where: Target, timeout: httpx.Timeout, loop: asyncio.AbstractEventLoop) -> _Connection:
        key = where.key
        deadline = None if timeout.pool is None else loop.time() + timeout.pool
        while True:
            entry = (key, loop.create_future())
            self._waiters.append(entry)
            try:
                async with asyncio.timeout_at(deadline):
                    await entry[1]
            except TimeoutError:
                raise httpx.PoolTimeout(
                    f"no free connection to {where.host}:{where.port} within {timeout.pool:g}s"
                ) from None
            finally:
                with contextlib.suppress(ValueError):  # still queued: timed out or cancelled
                    self._waiters.remove(entry)
            conn = self._idle_connection(key, loop.time())
            if conn is not None:
                return conn
            if self._room(key):
                return await self._connect(where, timeout.connect, loop)

    def _wake(self, key: tuple[str, str, int] | None) -> bool:
        """Wake the first waiter for ``key`` (an idle connection is there), else for any origin
        with room for a new connection (``key`` None: a connection closed)."""
        waiters = self._waiters
        for i, (wanted, future) in enumerate(waiters):
            if not future.done() and (wanted == key or (key is None and self._room(wanted))):
                del waiters[i]
                future.set_result(None)
                return True
        return False

    def release(self, conn: _Connection) -> None:
        """``conn``'s reply was read to its end and the upstream keeps it alive."""
        assert self._loop is not None
        conn.idle_since = self._loop.time()
        self._idle.setdefault(conn.key, deque()).append(conn)
        if self._waiters and not self._wake(conn.key) and self._max and len(self._counted) >= self._max:
            conn.close()  # nobody wants this origin; its place goes to a call waiting for another

    def forget(self, conn: _Connection) -> None:
        """``conn`` closed (once per connection, whoever closed it)."""
        if conn not in self._counted:
            return
        self._counted.discard(conn)
        self._open[conn.key] -= 1
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        if self._waiters:
            self._wake(None)

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        for conn in list(self._counted):  # a former loop's connections: it is gone or elsewhere
            if conn.transport is not None:
                try:
                    conn.transport.abort()
                except RuntimeError:  # its loop is closed
                    pass
        self._counted.clear()
        self._idle.clear()
        self._open.clear()
        self._waiters.clear()
        self._loop = loop

    async def aclose(self) -> None:
        for conn in list(self._counted):
            conn.drop()
        self._idle.clear()
        if self._loop is not None and self._loop is asyncio.get_running_loop():
            await asyncio.sleep(0)  # let the transports close their sockets
