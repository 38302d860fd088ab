"""One keep-alive HTTP/1.1 connection (an asyncio protocol; httptools calls its ``on_*``), what
it hands a reply to (``Sink``), and the request's head: the request line and the header lines."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, NoReturn

import httptools
import httpx

if TYPE_CHECKING:
    from ._pool import Http1Pool

__all__ = ["Sink", "Connection", "Target", "header_lines", "raw_header_lines", "target"]


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


@functools.lru_cache(maxsize=1024)
def target(method: str, url: str) -> Target:
    """``Target`` for ``method`` and ``url``, cached: a deployment calls the same few URLs."""
    return Target(method, url)


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


class Sink:
    """What a connection hands a reply to: its status and headers, its body per read, its end."""

    __slots__ = ()

    def headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    def feed(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def fail(self, exc: BaseException) -> None: ...


class Connection(asyncio.Protocol):
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
        self.sink: Sink | None = None
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

    def send(self, data: bytes, sink: Sink, read_timeout: float | None) -> None:
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
            self._headers = []  # the reply handed on keeps its own list

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
