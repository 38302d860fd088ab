"""``llm_factory_core._http1``: the HTTP/1.1 client the fast transport sends its calls through.

Its pool (keep-alive, caps, the wait for a connection, idle expiry), its framing (lengths, chunks,
a body that ends with the connection), its caps and failures, TLS. Over real loopback sockets, to
an asyncio server on the test's own loop that keeps connections alive and answers as each test
scripts. (The transport-level behaviours, the same for every transport, are in
``test_http_transport.py``; the splice in ``test_aiohttp_splice.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

pytest.importorskip("httptools")

from llm_factory_core._bounded import LimitExceeded
from llm_factory_core._http1 import Http1Pool
from tests.core.raw_upstream import read_request

pytestmark = pytest.mark.anyio

LIVENESS = 10.0
TIMEOUT = httpx.Timeout(LIVENESS)
BIG = 1 << 20


@dataclass
class Request:
    head: bytes
    body: bytes
    connection: int
    """Which connection (1, 2, ...) of the server it came on."""


Answer = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the reply; returns whether the connection stays open for the next request."""


def reply(body: bytes = b"ok", status: int = 200, *extra: bytes) -> Answer:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        head = b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n%s\r\n" % (status, len(body), b"".join(extra))
        writer.write(head + body)
        return b"connection: close" not in b"".join(extra).lower()

    return answer


@dataclass
class Server:
    answer: Answer
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                request = Request(*await read_request(reader), number)
                self.requests.append(request)
                keep = await self.answer(request, writer)
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.closed += 1
            writer.transport.abort()


@contextlib.asynccontextmanager
async def serving(answer: Answer, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(answer)
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await server.handle(reader, writer)
        finally:
            tasks.discard(task)

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1/chat/completions"
    try:
        yield server
    finally:
        listener.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listener.wait_closed()


@contextlib.asynccontextmanager
async def pool(
    *, total: int = 100, per_host: int = 0, expiry: float = 30.0, context: ssl.SSLContext | None = None
) -> AsyncIterator[Http1Pool]:
    made = Http1Pool(
        max_connections=total,
        max_per_host=per_host,
        keepalive_expiry=expiry,
        ssl_context=lambda: context or ssl.create_default_context(),
    )
    try:
        yield made
    finally:
        await made.aclose()


async def post(client: Http1Pool, url: str, *, timeout: httpx.Timeout = TIMEOUT, **headers: str) -> tuple[int, bytes]:
    status, _, body = await client.post(url, b'{"x": 1}', headers, timeout, max_body=BIG, max_error_body=64)
    return status, body


async def until(predicate: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), LIVENESS)


# -- the request on the wire ----------------------------------------------------------------------


async def test_the_request_carries_host_length_and_the_headers_as_given() -> None:
    async with serving(reply()) as server, pool() as client:
        assert await post(client, server.url, authorization="Bearer k", x_trace="t-1") == (200, b"ok")
    (request,) = server.requests
    port = server.url.split(":")[2].split("/")[0]
    assert request.head == (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n"
        b"authorization: Bearer k\r\nx_trace: t-1\r\nContent-Length: 8\r\n\r\n" % port.encode()
    )
    assert request.body == b'{"x": 1}'


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
async def test_a_header_that_would_split_the_request_is_refused_without_its_value(value: str) -> None:
    async with serving(reply()) as server, pool() as client:
        with pytest.raises(httpx.LocalProtocolError) as caught:
            await post(client, server.url, authorization=f"Bearer sk-secret-{value}")
    assert "'authorization'" in str(caught.value)
    assert "sk-secret" not in str(caught.value)
    assert server.requests == []


# -- keep-alive and the pool -------------------------------------------------------------------------


async def test_one_connection_serves_one_call_after_another() -> None:
    async with serving(reply()) as server, pool() as client:
        for _ in range(5):
            assert await post(client, server.url) == (200, b"ok")
    assert server.connections == 1
    assert len(server.requests) == 5


async def test_a_reply_that_closes_its_connection_is_not_reused() -> None:
    async with serving(reply(b"ok", 200, b"connection: close\r\n")) as server, pool() as client:
        for _ in range(3):
            assert await post(client, server.url) == (200, b"ok")
    assert server.connections == 3


async def test_an_idle_connection_the_upstream_closed_is_replaced_without_an_error() -> None:
    async def once(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\ncontent-length: 2\r\n\r\nok")
        return False  # keep-alive said, then closed anyway (an upstream's idle timeout)

    async with serving(once) as server, pool() as client:
        assert await post(client, server.url) == (200, b"ok")
        await until(lambda: server.closed == 1)
        await asyncio.sleep(0.05)  # the close reaches the client's idle connection
        assert await post(client, server.url) == (200, b"ok")
    assert server.connections == 2


async def test_an_idle_connection_past_its_expiry_is_closed_not_reused() -> None:
    async with serving(reply()) as server, pool(expiry=0.05) as client:
        assert await post(client, server.url) == (200, b"ok")
        await asyncio.sleep(0.1)
        assert await post(client, server.url) == (200, b"ok")
        await until(lambda: server.closed == 1)
    assert server.connections == 2


async def test_calls_at_the_per_origin_cap_wait_for_a_connection_and_get_it() -> None:
    go = asyncio.Event()

    async def held(request: Request, writer: asyncio.StreamWriter) -> bool:
        await go.wait()
        return await reply()(request, writer)

    async with serving(held) as server, pool(per_host=1) as client:
        calls = [asyncio.create_task(post(client, server.url)) for _ in range(3)]
        await until(lambda: len(server.requests) == 1)
        await asyncio.sleep(0.05)
        assert len(server.requests) == 1  # the others wait for the one connection
        go.set()
        assert await asyncio.gather(*calls) == [(200, b"ok")] * 3
    assert server.connections == 1


async def test_the_wait_for_a_connection_is_bounded_by_the_pool_timeout() -> None:
    async def hang(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(LIVENESS)
        return False

    async with serving(hang) as server, pool(per_host=1) as client:
        first = asyncio.create_task(post(client, server.url))
        await until(lambda: len(server.requests) == 1)
        with pytest.raises(httpx.PoolTimeout, match=r"no free connection to 127\.0\.0\.1:\d+ within 0\.1s"):
            await post(client, server.url, timeout=httpx.Timeout(LIVENESS, pool=0.1))
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first


async def test_at_the_total_cap_an_idle_connection_to_another_origin_makes_room() -> None:
    async with serving(reply(b"a")) as a, serving(reply(b"b")) as b, pool(total=1) as client:
        assert await post(client, a.url) == (200, b"a")
        assert await post(client, b.url) == (200, b"b")
        await until(lambda: a.closed == 1)  # a's idle connection gave its place to b's
        assert await post(client, b.url) == (200, b"b")
    assert (a.connections, b.connections) == (1, 1)


async def test_a_call_waiting_at_the_total_cap_gets_the_place_a_finished_call_frees() -> None:
    go = asyncio.Event()

    async def held(request: Request, writer: asyncio.StreamWriter) -> bool:
        await go.wait()
        return await reply(b"a")(request, writer)

    async with serving(held) as a, serving(reply(b"b")) as b, pool(total=1) as client:
        first = asyncio.create_task(post(client, a.url))
        await until(lambda: len(a.requests) == 1)
        second = asyncio.create_task(post(client, b.url))
        await asyncio.sleep(0.05)
        assert b.connections == 0  # the one place is a's
        go.set()
        assert await asyncio.gather(first, second) == [(200, b"a"), (200, b"b")]
        await until(lambda: a.closed == 1)  # a's connection, idle, made way


async def test_a_cancelled_call_drops_its_connection_and_frees_its_place() -> None:
    calls = 0

    async def first_hangs(request: Request, writer: asyncio.StreamWriter) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(LIVENESS)
        return await reply()(request, writer)

    async with serving(first_hangs) as server, pool(per_host=1) as client:
        hung = asyncio.create_task(post(client, server.url))
        await until(lambda: len(server.requests) == 1)
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        await until(lambda: server.closed == 1)  # dropped, not left half-read in the pool
        assert await post(client, server.url) == (200, b"ok")
    assert server.connections == 2


# -- framing ----------------------------------------------------------------------------------------


async def test_a_chunked_reply_and_one_ended_by_the_connection_are_read_whole() -> None:
    async def chunked(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        return True

    async def until_close(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\nconnection: close\r\n\r\nall of it")
        return False

    async with serving(chunked) as one, serving(until_close) as other, pool() as client:
        assert await post(client, one.url) == (200, b"abcde")
        assert await post(client, one.url) == (200, b"abcde")
        assert await post(client, other.url) == (200, b"all of it")
    assert one.connections == 1


async def test_a_stream_ended_by_the_connection_ends_and_one_cut_mid_chunk_fails() -> None:
    async def until_close(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\nconnection: close\r\n\r\ndata: 1\n\n")
        return False

    async def cut(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n20\r\ndata")
        return False

    async with serving(until_close) as whole, serving(cut) as broken, pool() as client:
        body = await client.open("POST", whole.url, b"{}", b"", TIMEOUT)
        assert [chunk async for chunk in body.raw_chunks()] == [b"data: 1\n\n"]
        body = await client.open("POST", broken.url, b"{}", b"", TIMEOUT)
        received = []
        with pytest.raises(httpx.RemoteProtocolError, match="closed the connection before the reply ended"):
            async for chunk in body.raw_chunks():
                received.append(chunk)
        assert b"".join(received) == b"data: 1\n\ndata"  # what arrived before the cut comes first


async def test_a_reader_behind_pauses_the_socket_and_still_gets_every_byte() -> None:
    block = b"x" * 65536

    async def flood(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\ncontent-length: %d\r\n\r\n" % (len(block) * 32))
        for _ in range(32):
            writer.write(block)
            await writer.drain()
        return True

    async with serving(flood) as server, pool() as client:
        body = await client.open("POST", server.url, b"{}", b"", TIMEOUT)
        await until(lambda: body._conn is not None and body._conn.paused)  # over the high-water mark
        assert body._size < 32 * len(block)
        data = b"".join([chunk async for chunk in body.raw_chunks()])
        assert data == block * 32
        status, _, again = await client.post(server.url, b"{}", {}, TIMEOUT, max_body=1 << 22, max_error_body=1)
        assert (status, again) == (200, block * 32)  # released unpaused, and reused
    assert server.connections == 1


async def test_an_interim_reply_is_skipped_and_a_second_reply_never_handed_on() -> None:
    async def hints(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 X\r\ncontent-length: 2\r\n\r\nok")
        return True

    async def twice(request: Request, writer: asyncio.StreamWriter) -> bool:
        one = b"HTTP/1.1 200 X\r\ncontent-length: 3\r\n\r\none"
        writer.write(one + one.replace(b"200", b"500").replace(b"one", b"two"))  # one read
        return True

    async with serving(hints) as early, serving(twice) as double, pool() as client:
        assert await post(client, early.url) == (200, b"ok")
        assert await post(client, early.url) == (200, b"ok")
        assert early.connections == 1
        status, headers, body = await client.post(double.url, b"{}", {}, TIMEOUT, max_body=BIG, max_error_body=64)
        assert (status, headers, body) == (200, [(b"content-length", b"3")], b"one")  # the second's not mixed in
        assert await post(client, double.url) == (200, b"one")
        assert double.connections == 2  # a connection that sent more than was asked is not reused


async def test_invalid_http_from_the_upstream_is_a_protocol_error() -> None:
    async def garbage(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        return True

    async with serving(garbage) as server, pool() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="invalid HTTP"):
            await post(client, server.url)


# -- caps and failures ------------------------------------------------------------------------------


async def test_an_error_reply_is_cut_at_its_cap_and_its_connection_dropped() -> None:
    async with serving(reply(b"e" * 1000, 500)) as server, pool() as client:
        assert await post(client, server.url) == (500, b"e" * 64)
        assert await post(client, server.url) == (500, b"e" * 64)
    assert server.connections == 2  # never drained, never reused


async def test_a_reply_over_its_cap_is_a_limit_error_naming_the_setting() -> None:
    async with serving(reply(b"x" * 100)) as server, pool() as client:
        with pytest.raises(LimitExceeded, match="max_response_bytes=50"):
            await client.post(server.url, b"{}", {}, TIMEOUT, max_body=50, max_error_body=10)
        await until(lambda: server.closed == 1)


async def test_a_silent_upstream_is_a_read_timeout_and_a_closed_port_a_connect_error() -> None:
    async def silent(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\ncontent-length: 10\r\n\r\nabc")
        await asyncio.sleep(LIVENESS)
        return False

    async with serving(silent) as server, pool() as client:
        with pytest.raises(httpx.ReadTimeout, match=r"nothing for 0\.2s"):
            await post(client, server.url, timeout=httpx.Timeout(0.2, connect=LIVENESS))
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        with pytest.raises(httpx.ConnectError):
            await post(client, f"http://127.0.0.1:{port}/v1")
        assert client._counted == set()  # neither left a connection behind


async def test_only_http_and_https_urls_are_sent() -> None:
    async with pool() as client:
        with pytest.raises(httpx.UnsupportedProtocol, match="'ftp'"):
            await post(client, "ftp://127.0.0.1/x")


# -- TLS --------------------------------------------------------------------------------------------


async def test_https_is_verified_against_the_trusted_authorities() -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async with serving(reply(b"secure"), tls=server_context) as server:
        async with pool(context=trusting) as client:
            assert await post(client, server.url) == (200, b"secure")
            assert await post(client, server.url) == (200, b"secure")
        assert server.connections == 1
        async with pool(context=ssl.create_default_context()) as stranger:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(stranger, server.url)
