"""Keep-alive connections per origin, capped in all and per origin, and the calls made on them."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable, Mapping

import httpx

from ._bodies import Http1Body, Whole
from ._connection import Connection, Target, header_lines, target

__all__ = ["Http1Pool"]


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
        self._idle: dict[tuple[str, str, int], deque[Connection]] = {}
        self._open: dict[tuple[str, str, int], int] = {}
        self._counted: set[Connection] = set()
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
        """POST and read the whole (decoded) reply: status, raw headers, body (see ``Whole``)."""
        where = target("POST", url)
        head = where.line + header_lines(headers) + b"Content-Length: %d\r\n\r\n" % len(content)
        conn = await self.acquire(where, timeout)
        assert self._loop is not None
        whole = Whole(conn, self._loop.create_future(), max_body, max_error_body)
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

    async def acquire(self, where: Target, timeout: httpx.Timeout) -> Connection:
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

    def _idle_connection(self, key: tuple[str, str, int], now: float) -> Connection | None:
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
    ) -> Connection:
        conn = Connection(self, where.key, loop)
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

    async def _wait(self, where: Target, timeout: httpx.Timeout, loop: asyncio.AbstractEventLoop) -> Connection:
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

    def release(self, conn: Connection) -> None:
        """``conn``'s reply was read to its end and the upstream keeps it alive."""
        assert self._loop is not None
        conn.idle_since = self._loop.time()
        self._idle.setdefault(conn.key, deque()).append(conn)
        if self._waiters and not self._wake(conn.key) and self._max and len(self._counted) >= self._max:
            conn.close()  # nobody wants this origin; its place goes to a call waiting for another

    def forget(self, conn: Connection) -> None:
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
