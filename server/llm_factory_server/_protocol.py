"""uvicorn's httptools protocol with the limits it lacks: a connection cap, a deadline for a
request's line and headers (slowloris), one for its body, and a cap on the size of the head.

uvicorn has ``limit_concurrency`` (a 503 once the limit is reached) and ``timeout_keep_alive``
(idle time *between* requests), but with httptools nothing bounds a connection that never finishes
its headers, nor their size: thousands of half-open requests, or megabytes of headers on the
unauthenticated ``/health``, were accepted. These are enforced here, in the protocol, before any
ASGI app runs. ``uvicorn_options`` gives uvicorn the class (picklable, for ``--workers``).

It also offers each request the ASGI extension ``llm_factory.splice`` (``ResponseSplice``): a way
to write the body of a streamed response straight to the connection, framed as uvicorn frames it,
from a callback of another connection (the pass-through splice, ``_passthrough``), and to be told
when the client leaves without a task waiting on ``receive()``.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ._settings import ServerSettings

__all__ = ["SPLICE_EXTENSION", "GatewayHttpProtocol", "ProtocolLimits", "ResponseSplice", "uvicorn_options"]

SPLICE_EXTENSION = "llm_factory.splice"


@dataclass(frozen=True)
class ProtocolLimits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_header_bytes: int = 16 * 1024
    max_connections: int | None = 1000


class _HeadTooLarge(Exception):
    pass


def _reply(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message
    )


_TIMEOUT = _reply(b"408 Request Timeout", b"Request Timeout: the request was not sent in time.")
_TOO_LARGE = _reply(
    b"431 Request Header Fields Too Large",
    b"Request Header Fields Too Large: the request line and headers exceed server.max_header_bytes.",
)


def _chunk(body: bytes) -> bytes:
    """``body`` as one HTTP/1.1 chunk, as uvicorn frames a chunked response's bodies."""
    return b"%x\r\n%b\r\n" % (len(body), body)


class ResponseSplice:
    """The body of one streamed response, written without the ASGI ``send`` (and its task).

    Only between the response's start and its last ``send`` (which uvicorn still makes, so the
    response ends and the connection is reused as uvicorn does it). ``write`` frames the bytes as
    uvicorn does (chunked or not) and drops them once the client is gone; ``paused`` is True
    while the client's connection is full (or gone); ``when_writable`` registers the one
    callback to run once it drains."""

    __slots__ = ("_cycle", "_protocol")

    def __init__(self, protocol: GatewayHttpProtocol, cycle: Any) -> None:
        self._protocol = protocol
        # Weakly: the cycle's scope holds this object, and a reference cycle per request left
        # every request's objects to the garbage collector, whose pauses were the p99.
        self._cycle: Callable[[], Any] = weakref.ref(cycle)

    def serves(self, send: Any) -> bool:
        """Whether ``send`` is the server's own: an app whose ``send`` some middleware wrapped
        (compression, a body rewrite) must not have its bytes written past it."""
        cycle = self._cycle()
        return cycle is not None and bool(send == cycle.send)

    def write(self, body: bytes) -> None:
        cycle = self._cycle()
        if cycle is None or cycle.disconnected or cycle.response_complete or not cycle.response_started:
            return
        if cycle.chunked_encoding:
            cycle.transport.write(_chunk(body))
        else:
            cycle.transport.write(body)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, more_body: bool = False) -> bool:
        """Send a response's head and its (first) body in one write (uvicorn's ``send`` makes
        two), leaving the cycle as uvicorn's would. ``headers`` are the gateway's own, already
        valid: with the body's ``content-length`` for a whole response; for one with
        ``more_body`` (a stream: chunked, its further bodies sent or written as usual) without.
        False when this response is not one to write so (started already, the client's
        connection full or gone, uvicorn's access log on): ``send`` it as usual."""
        cycle = self._cycle()
        if cycle is None or cycle.response_started or cycle.disconnected or cycle.flow.write_paused or cycle.access_log:
            return False
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.chunked_encoding = more_body
        cycle.expected_content_length = 0
        parts = [STATUS_LINE[status]]
        for name, value in cycle.default_headers:
            parts += (name, b": ", value, b"\r\n")
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        if more_body:
            parts += (b"transfer-encoding: chunked\r\n\r\n", _chunk(body) if body else b"")
            cycle.transport.write(b"".join(parts))
            return True
        parts += (b"\r\n", body)
        cycle.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
        return True

    def paused(self) -> bool:
        cycle = self._cycle()
        return cycle is None or bool(cycle.flow.write_paused or cycle.disconnected)

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        self._protocol.on_writable = callback

    def on_disconnect(self, callback: Callable[[], None] | None) -> None:
        """Run ``callback`` once if the client's connection is lost (None: no more)."""
        cycle = self._cycle()
        if callback is not None and (cycle is None or cycle.disconnected):
            callback()  # gone already
            return
        self._protocol.on_disconnect = callback


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus ``ProtocolLimits``; everything else is uvicorn's."""

    def __init__(self, *args: Any, limits: ProtocolLimits = ProtocolLimits(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self.on_writable: Callable[[], None] | None = None
        """Run once when the client's connection drains (``ResponseSplice.when_writable``)."""
        self.on_disconnect: Callable[[], None] | None = None
        """Run once when the connection is lost (``ResponseSplice.on_disconnect``)."""

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.limits.max_connections
        if cap is not None and len(self.connections) > cap:
            # Closed before a byte is read: a flood of idle sockets cannot hold the process's
            # file descriptors (requests at the limit itself get uvicorn's 503).
            self._refused = True
            transport.close()
            return
        # From the first byte of the connection, not of the request: a socket that never sends
        # anything is the cheapest slowloris of all.
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.on_writable = None
        super().connection_lost(exc)
        callback, self.on_disconnect = self.on_disconnect, None
        if callback is not None:
            callback()

    def resume_writing(self) -> None:
        super().resume_writing()
        callback, self.on_writable = self.on_writable, None
        if callback is not None:
            callback()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # our own refusal (431) stopped the parser; it has answered already
            return
        super().send_400_response(msg)

    # -- request head ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:  # the first request's deadline runs from the connection
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[SPLICE_EXTENSION] = ResponseSplice(self, cycle)
        if self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timeout)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes and not self._refused:
            self._refuse(_TOO_LARGE)
            raise _HeadTooLarge  # stops the parser (uvicorn's 400 is skipped, see send_400_response)

    # -- deadlines -------------------------------------------------------------------------------

    def _head_timeout(self) -> None:
        self._head_timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined request is late while the previous one is answered: finish that one,
            # then close.
            cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self._refuse(_TIMEOUT)

    def _body_timeout(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is not None and (cycle.response_started or cycle.response_complete):
            self._refused = True
            self.transport.close()  # the app has answered (or is answering); stop waiting for the body
            return
        self._refuse(_TIMEOUT)  # the app sees a disconnect and stops waiting too

    def _refuse(self, reply: bytes) -> None:
        self._refused = True
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.write(reply)
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """uvicorn ``Config`` keywords for the connection limits of ``settings``."""
    limits = ProtocolLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_connections=settings.limit_concurrency,
    )
    return {
        # A partial of a module-level class: picklable, so ``--workers`` processes get it too.
        "http": functools.partial(GatewayHttpProtocol, limits=limits),
        "limit_concurrency": settings.limit_concurrency,
        "timeout_keep_alive": settings.timeout_keep_alive,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
