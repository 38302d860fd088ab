"""An httpx transport on aiohttp, and the fast path the provider helpers take through it.

httpx keeps its API (the plugin contract and the ``httpx.MockTransport`` test seam), but its own
connection pool scans every connection on each request (it stalls at a few dozen concurrent
requests) and its request/response machinery costs a few hundred microseconds of CPU per call.
aiohttp's pool and C parser do the same work in well under a hundred. So:

- ``AiohttpTransport`` is an ordinary ``httpx.AsyncBaseTransport``: any ``client.post(...)`` a
  plugin makes goes through aiohttp, with aiohttp's errors mapped to httpx's (a reset stays a
  connection error, a read timeout stays a read timeout: failover decisions do not change).
- ``Provider.post_json`` and ``Provider.open_stream`` (what most plugins use) skip httpx's client
  layer on a client the factory built around this transport: the body, headers and timeouts go
  straight to aiohttp. Clients a user passed in (``http_client=``) always take the httpx path,
  so their hooks, auth and default headers apply.

URLs go to aiohttp exactly as given (``yarl.URL(url, encoded=True)``, after the same escaping of
invalid characters httpx applies): aiohttp would otherwise re-normalise them and send ``%3A`` as
``:``, which breaks a SigV4 signature computed over the escaped path (every Bedrock model id).

The exchanges themselves go through ``_http1`` (a small HTTP/1.1 client on httptools, several
times cheaper per call than aiohttp's session) wherever it can carry them: every origin reached
without a proxy, a URL without user-info, a body in memory, any method but ``HEAD``. aiohttp
carries the rest, so a proxy, credentials in the URL, a streamed request body or a ``HEAD``
behave exactly as before.

Imported only when the aiohttp transport is selected (``aiohttp`` is an optional dependency, in
the ``fast`` extra, with ``httptools``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
from yarl import URL

from ._bounded import read_capped

try:  # the ``fast`` extra brings it; an install without it takes aiohttp's path for every call
    from ._http1 import Http1Pool, header_lines, raw_header_lines
except ImportError:  # pragma: no cover - httptools missing
    Http1Pool = None  # type: ignore[assignment,misc]

__all__ = ["AiohttpTransport", "FastResponseStream", "Flow"]

# Most specific first: the first match wins.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),
    (OSError, httpx.ReadError),
)


def _mapped(exc: BaseException) -> httpx.TransportError | None:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc) or type(exc).__name__)
    return None


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """aiohttp's exceptions as httpx's; cancellation and everything else pass untouched."""
    try:
        yield
    except (aiohttp.ClientError, OSError) as exc:
        mapped = _mapped(exc)
        if mapped is None:  # pragma: no cover - every ClientError / OSError maps
            raise
        raise mapped from exc


def _unread(content: aiohttp.StreamReader) -> bytes:
    """What ``content`` buffered but nobody read, even once it holds an exception (every public
    read raises the exception first). Empty if aiohttp's internals ever change shape."""
    read_buffered = getattr(content, "_read_nowait", None)
    try:
        return read_buffered(-1) if read_buffered is not None else b""
    except Exception:  # pragma: no cover - a future aiohttp; losing the tail is the old behaviour
        return b""


_URLS: dict[str, URL] = {}
_URLS_KEPT = 1024


def _wire_url(url: str) -> URL:
    """``url`` as it goes on the wire: percent escapes kept as they are (yarl would decode
    ``%3A``), characters invalid in a URL escaped as httpx escapes them (so both transports send
    the same bytes). Cached: a deployment calls the same few URLs over and over."""
    wire = _URLS.get(url)
    if wire is None:
        if len(_URLS) >= _URLS_KEPT:
            _URLS.clear()
        wire = _URLS[url] = URL(str(httpx.URL(url)), encoded=True)
    return wire


_SPLICE_NEEDS = ("_buffer", "_eof", "_low_water", "_read_nowait", "_waiter")
_CAN_SPLICE = all(hasattr(aiohttp.StreamReader, name) for name in _SPLICE_NEEDS)
"""``_Splice`` works on these internals of aiohttp's reader; an aiohttp without them streams
the ordinary way (``raw_chunks``), just slower."""

_REQUESTS: dict[tuple[str, str], httpx.Request] = {}


def _request_for(method: str, url: str) -> httpx.Request:
    """The ``httpx.Request`` a fast-path response names (for its URL in errors): one per method
    and URL, read only, cached as ``_wire_url`` is (httpx parses the URL again on each one)."""
    key = (method, url)
    request = _REQUESTS.get(key)
    if request is None:
        if len(_REQUESTS) >= _URLS_KEPT:
            _REQUESTS.clear()
        request = _REQUESTS[key] = httpx.Request(method, url)
    return request


class FastResponseStream(httpx.AsyncByteStream):
    """The body of an aiohttp response as httpx's stream; chunks are handed on as they arrive
    (no batching). ``raw_chunks`` is the same without httpx's decoding layers, for the SSE
    decoder's fast path."""

    __slots__ = ("_response",)

    can_splice = _CAN_SPLICE

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def raw_chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        with _httpx_errors():
            try:
                async for chunk in content.iter_any():
                    yield chunk
            except aiohttp.ClientPayloadError:
                # aiohttp raises a broken connection ahead of the bytes that arrived before the
                # break; a reader that was busy would lose the last tokens the upstream sent.
                if rest := _unread(content):
                    yield rest
                raise

    async def splice(self, on_data: Callable[[bytes], bool], flow: Flow) -> None:
        """Hand each read of the body to ``on_data`` as it arrives, inside the connection's
        ``data_received`` (no task wakes per read), until the body ends, ``on_data`` returns True
        (it needs no more) or raises (raised here). Reading stops while ``flow.paused()`` and
        resumes on its ``when_writable`` callback. Failures raise as ``raw_chunks``' do, after
        the bytes that arrived before them; cancelling stops the splice at once."""
        splice = _Splice(self._response, on_data, flow, asyncio.get_running_loop())
        try:
            splice.drain()  # what arrived before the splice began
            try:
                await splice.finished
            except (aiohttp.ClientError, OSError) as exc:
                if exc is splice.consumer_error:
                    raise  # on_data's own error, not the upstream's
                with _httpx_errors():
                    raise
        finally:
            splice.detach()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.raw_chunks():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class Flow(Protocol):
    """Whether the reader of a spliced body can take more (see ``FastResponseStream.splice``)."""

    def paused(self) -> bool: ...

    def when_writable(self, callback: Callable[[], None] | None) -> None: ...


class _Splice:
    """Stands in for the future aiohttp's ``StreamReader`` wakes its reader with (``_waiter``):
    the reader calls ``set_result`` when data arrives or the body ends and ``set_exception``
    when it fails, synchronously, in the connection's ``data_received``; this drains the buffer
    there and then, so a spliced stream costs no task switch or future per read.

    Two of aiohttp's per-read costs are taken over for the splice's duration (and given back
    after): its read timeout re-arms a timer on every read (about half of aiohttp's CPU per
    chunk), here one timer checks the time of the last read when it fires; and a read below the
    reader's low-water mark re-runs the HTTP parser on no data, from inside the parser's own
    callback, here every read is drained at once and the connection paused by this class."""

    __slots__ = (
        "_content",
        "_flow",
        "_last",
        "_loop",
        "_low_water",
        "_on_data",
        "_paused",
        "_protocol",
        "_read_timeout",
        "_watchdog",
        "consumer_error",
        "finished",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        on_data: Callable[[bytes], bool],
        flow: Flow,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        content = self._content = response.content
        connection = response.connection
        self._protocol = protocol = connection.protocol if connection is not None else None
        self._on_data = on_data
        self._flow = flow
        self._loop = loop
        self._paused = False
        self.finished: asyncio.Future[None] = loop.create_future()
        self.consumer_error: BaseException | None = None
        self._low_water = content._low_water
        content._low_water = -1
        self._read_timeout = protocol.read_timeout if protocol is not None else None
        self._last = loop.time()
        self._watchdog: asyncio.TimerHandle | None = None
        if protocol is not None and self._read_timeout:
            protocol.read_timeout = None  # its timer already armed still fires: the silence so far counts
            self._watchdog = loop.call_at(self._last + self._read_timeout, self._check)

    # The two calls aiohttp makes on its waiter (``helpers.set_result`` / ``set_exception``).
    def done(self) -> bool:
        return self.finished.done()

    def set_result(self, _: object) -> None:
        content = self._content
        if not content._buffer and not content._eof:  # the end of an HTTP chunk: nothing new
            content._waiter = self  # type: ignore[assignment]
            return
        self.drain()

    def set_exception(self, exc: BaseException) -> None:
        self.drain()  # the bytes before the failure first, as ``raw_chunks`` yields them

    def drain(self) -> None:
        content, finished = self._content, self.finished
        if finished.done():
            return
        try:
            data = _unread(content)
            if data:
                self._last = self._loop.time()
                if self._on_data(data):
                    finished.set_result(None)
                    return
        except BaseException as exc:  # the consumer's error ends the splice; aiohttp never sees it
            self.consumer_error = exc
            finished.set_exception(exc)
            return
        failure = content.exception()
        if failure is not None:
            finished.set_exception(failure)
        elif content.is_eof():
            finished.set_result(None)
        else:
            content._waiter = self  # type: ignore[assignment]  # re-armed: aiohttp clears it per wake
            if self._flow.paused() and not self._paused and (transport := self._transport()) is not None:
                self._paused = True
                transport.pause_reading()
                self._flow.when_writable(self._resume)

    def _transport(self) -> asyncio.Transport | None:
        # The socket alone is paused, not aiohttp's protocol: that would pause its HTTP parser too,
        # which (in C) clears the flag only from inside a body callback; a pause set between
        # callbacks would leave the rest of a read unparsed until the upstream sent more.
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        return transport if transport is not None and not transport.is_closing() else None

    def _resume(self) -> None:
        self._paused = False
        transport = self._transport()
        if not self.finished.done() and transport is not None:
            self._last = self._loop.time()  # a pause is the client's, not the upstream's silence
            transport.resume_reading()

    def _check(self) -> None:
        timeout = self._read_timeout
        assert timeout is not None
        self._watchdog = None
        if self.finished.done():
            return
        now = self._loop.time()
        if self._paused:
            self._last = now
        elif now - self._last >= timeout:
            # What aiohttp's own read timeout raises (``httpx.ReadTimeout`` once mapped).
            self.finished.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
            return
        self._watchdog = self._loop.call_at(self._last + timeout, self._check)

    def detach(self) -> None:
        content = self._content
        content._low_water = self._low_water
        if content._waiter is self:  # type: ignore[comparison-overlap]
            content._waiter = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        protocol = self._protocol
        if protocol is not None and self._read_timeout:
            protocol.read_timeout = self._read_timeout
        if self._paused:
            self._paused = False
            self._flow.when_writable(None)
            transport = self._transport()
            if transport is not None:
                transport.resume_reading()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(limits))``; one aiohttp session per event
    loop, created on first use. ``max_connections_per_host`` caps the connections to one origin
    (0: only the pool's total cap), so a hanging upstream cannot hold every connection; the wait
    for a free one is bounded by the request's ``pool`` timeout. Proxies (``HTTPS_PROXY``,
    ``NO_PROXY``...) and ``SSL_CERT_FILE`` are honoured as httpx honours them; no cookies are
    kept between requests.

    The proxy environment is read once, and the answer per origin cached: aiohttp's own
    ``trust_env`` re-reads it, and ``~/.netrc``, in a worker thread on every request."""

    def __init__(
        self,
        limits: httpx.Limits | None = None,
        *,
        max_connections_per_host: int = 0,
        verify: bool = True,
        trust_env: bool = True,
    ) -> None:
        self._limits = limits or httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
        self._per_host = max_connections_per_host
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}
        self._proxies = urllib.request.getproxies_environment() if trust_env else {}
        self._proxy_for: dict[str, str | None] = {}
        self._direct_for: dict[str, bool] = {}
        limits = self._limits
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 15.0
        # A partial, not a bound method: the pool holding it must not hold this transport (a cycle).
        self._ssl_context = functools.partial(httpx.create_ssl_context, verify=verify, trust_env=trust_env)
        self._http1 = (
            Http1Pool(
                max_connections=limits.max_connections or 0,
                max_per_host=max_connections_per_host,
                keepalive_expiry=self._keepalive,
                ssl_context=self._ssl_context,
            )
            if Http1Pool is not None
            else None
        )

    # -- session --------------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            limits = self._limits
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections or 0,
                limit_per_host=self._per_host,
                keepalive_timeout=self._keepalive,
                ssl=self._ssl_context(),
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return session

    def proxy(self, url: str) -> str | None:
        """The proxy for ``url`` from the environment (as httpx and urllib read it), or None."""
        if not self._proxies:
            return None
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxy_for:
            host = parts.hostname or ""
            bypass = urllib.request.proxy_bypass_environment(host, self._proxies)  # type: ignore[attr-defined]
            self._proxy_for[origin] = None if bypass else self._proxies.get(parts.scheme) or self._proxies.get("all")
        return self._proxy_for[origin]

    def _direct(self, url: str) -> bool:
        """Whether the HTTP/1.1 client carries a call to ``url``: no proxy, and no user-info in
        the URL (aiohttp turns ``user:pass@`` into basic auth, as httpx does; that client does not)."""
        direct = self._direct_for.get(url)
        if direct is None:
            if len(self._direct_for) >= _URLS_KEPT:
                self._direct_for.clear()
            direct = self._direct_for[url] = self.proxy(url) is None and "@" not in urlsplit(url).netloc
        return direct

    def client_timeout(
        self, connect: float | None, read: float | None, pool: float | None = None
    ) -> aiohttp.ClientTimeout:
        """httpx's semantics: ``connect`` bounds opening a connection, ``pool`` the wait for a
        free one, ``read`` each wait for bytes (the silence between two reads), nothing bounds
        the whole exchange. (aiohttp's ``connect`` covers waiting for the pool and connecting.)"""
        key = (connect, read, pool)
        timeout = self._timeouts.get(key)
        if timeout is None:
            acquire = None if pool is None or connect is None else pool + connect
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=acquire, sock_connect=connect, sock_read=read
            )
        return timeout

    def _for(self, timeout: httpx.Timeout | Mapping[str, Any] | None) -> aiohttp.ClientTimeout:
        if timeout is None:
            return self.client_timeout(None, None)
        if isinstance(timeout, httpx.Timeout):
            return self.client_timeout(timeout.connect, timeout.read, timeout.pool)
        return self.client_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool"))

    # -- the fast path (Provider.post_json / open_stream) ---------------------------------------

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
        """POST and read the whole (decoded) reply: status, raw headers, body.
        A reply is read up to ``max_body`` bytes (over it: ``LimitExceeded``), an error reply's
        first ``max_error_body`` bytes only (the connection is then dropped, not drained)."""
        http1 = self._http1
        if http1 is not None and self._direct(url):
            return await http1.post(url, content, headers, timeout, max_body=max_body, max_error_body=max_error_body)
        with _httpx_errors():
            async with self.session().request(
                "POST",
                _wire_url(url),
                data=content,
                headers=headers,
                allow_redirects=False,
                timeout=self._for(timeout),
                proxy=self.proxy(url),
            ) as response:
                status = response.status
                failed = status >= 400
                body = await read_capped(
                    response.content.iter_any(),
                    response.headers.get("content-encoding"),
                    max_error_body if failed else max_body,
                    "max_error_body_bytes" if failed else "max_response_bytes",
                    truncate=failed,
                )
                if failed and not response.content.at_eof():
                    response.close()
                return status, list(response.raw_headers), body

    async def open(
        self, method: str, url: str, content: bytes, headers: Mapping[str, str], timeout: httpx.Timeout
    ) -> httpx.Response:
        """Send and return as soon as the headers are in; the body streams. Close the response."""
        http1 = self._http1
        if http1 is not None and method != "HEAD" and self._direct(url):
            body = await http1.open(method, url, content, header_lines(headers), timeout)
            return httpx.Response(body.status, headers=body.raw_headers, stream=body, request=_request_for(method, url))
        with _httpx_errors():
            response = await self.session().request(
                method,
                _wire_url(url),
                data=content,
                headers=headers,
                allow_redirects=False,
                timeout=self._for(timeout),
                proxy=self.proxy(url),
            )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=FastResponseStream(response),
            request=_request_for(method, url),
        )

    # -- httpx.AsyncBaseTransport ---------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:
            data = request.stream
        url = str(request.url)
        http1 = self._http1
        if http1 is not None and isinstance(data, bytes | None) and request.method != "HEAD" and self._direct(url):
            timeout = request.extensions.get("timeout") or {}
            body = await http1.open(
                request.method,
                url,
                data or b"",
                raw_header_lines(request.headers.raw),
                timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(None, **timeout),
            )
            return httpx.Response(
                body.status, headers=body.raw_headers, stream=body, extensions={"http_version": b"HTTP/1.1"}
            )
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        headers = [(k, v) for k, v in headers if k.lower() not in ("transfer-encoding", "content-length")]
        with _httpx_errors():
            response = await self.session().request(
                request.method,
                _wire_url(url),
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=self._for(request.extensions.get("timeout")),
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Accept"),  # httpx set its own
                proxy=self.proxy(url),
            )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=FastResponseStream(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._http1 is not None:
            await self._http1.aclose()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
