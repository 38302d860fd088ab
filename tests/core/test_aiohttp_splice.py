"""The fast transport's ``splice``: each read of a response body handed to a callback inside the
connection's ``data_received``, with the flow control, the failures and the cancellation of the
async path (``raw_chunks``). Every test runs on both bodies the transport hands out: ``http1``
(``_http1.Http1Body``, the HTTP/1.1 client every call without a proxy takes) and ``aiohttp``
(``FastResponseStream`` over aiohttp's session: the calls through a proxy).

Over real loopback sockets: an asyncio server on the test's own loop writes exactly the bytes a
test scripts, when the test says (``Script``), so every step is sequenced by events, not by time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

pytest.importorskip("aiohttp")

from llm_factory_core._aiohttp import AiohttpTransport, FastResponseStream, _Splice
from llm_factory_core._http1 import Http1Body
from tests.core.raw_upstream import read_request

pytestmark = pytest.mark.anyio

BODIES = ("http1", "aiohttp")

LIVENESS = 10.0  # seconds: only ever a bound on a wait that should end much sooner

CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
END = b"0\r\n\r\n"


def framed(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def piece(i: int) -> bytes:
    return b"data: piece %04d\n\n" % i


Respond = Callable[[asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def upstream(respond: Respond) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 (this loop) that reads a request and runs ``respond(writer)``."""

    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await read_request(reader)
            await respond(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.transport.abort()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    finally:
        server.close()
        for task in list(handlers):  # a silent upstream still waiting
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


class Flow:
    """The reader's side of the flow control: ``paused`` as the test sets it; the callback the
    splice registers kept for the test to call."""

    def __init__(self, paused: bool = False) -> None:
        self.is_paused = paused
        self.callback: Callable[[], None] | None = None
        self.registered = 0

    def paused(self) -> bool:
        return self.is_paused

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        if callback is not None:
            self.registered += 1
        self.callback = callback


class Reads:
    """``on_data``: records each read; ``stop_at`` makes it return True on a read holding that
    text, ``fail_at`` raise ``fail_with`` on one; ``fills`` is a ``Flow`` each read pauses (as a
    write that fills the client's connection does)."""

    def __init__(
        self,
        *,
        stop_at: bytes | None = None,
        fail_at: bytes | None = None,
        fail_with: BaseException | None = None,
        fills: Flow | None = None,
    ) -> None:
        self.reads: list[bytes] = []
        self.fills = fills
        self.stop_at = stop_at
        self.fail_at = fail_at
        self.fail_with = fail_with
        self.changed = asyncio.Event()

    def __call__(self, data: bytes) -> bool:
        assert isinstance(data, bytes) and data, data
        self.reads.append(data)
        self.changed.set()
        if self.fills is not None:
            self.fills.is_paused = True
        if self.fail_at is not None and self.fail_at in data:
            assert self.fail_with is not None
            raise self.fail_with
        return self.stop_at is not None and self.stop_at in data

    @property
    def data(self) -> bytes:
        return b"".join(self.reads)

    async def until(self, predicate: Callable[[bytes], bool]) -> None:
        """Wait (bounded) until the bytes read so far satisfy ``predicate``."""

        async def wait() -> None:
            while not predicate(self.data):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), LIVENESS)


_BODY = "http1"


@pytest.fixture(autouse=True, params=BODIES)
def body(request: pytest.FixtureRequest) -> Any:
    """Which body the transport's ``open`` hands out in this test (see the module's docstring)."""
    global _BODY
    _BODY = request.param
    yield request.param
    _BODY = "http1"


def transport() -> AiohttpTransport:
    made = AiohttpTransport()
    if _BODY == "aiohttp":
        made._http1 = None  # what a call through a proxy takes
    return made


@contextlib.asynccontextmanager
async def opened(url: str, *, read: float = LIVENESS) -> AsyncIterator[tuple[AiohttpTransport, httpx.Response]]:
    client = transport()
    try:
        response = await client.open("POST", url, b"{}", {}, httpx.Timeout(LIVENESS, read=read))
        try:
            stream(response)
            yield client, response
        finally:
            await response.stream.aclose()
    finally:
        await client.aclose()


def stream(response: httpx.Response) -> Any:
    expected = Http1Body if _BODY == "http1" else FastResponseStream
    assert isinstance(response.stream, expected)
    return response.stream


def content(response: httpx.Response) -> Any:
    return stream(response)._response.content


class Probe:
    """What a test checks of a body's state, on either body."""

    def __init__(self, response: httpx.Response) -> None:
        self.body = stream(response)

    def received(self) -> int:
        if isinstance(self.body, Http1Body):
            return self.body.received
        return int(self.body._response.content.total_bytes)

    def ended(self) -> bool:
        if isinstance(self.body, Http1Body):
            return self.body._done
        return bool(self.body._response.content.is_eof())

    def spliced(self) -> bool:
        """A splice is attached to the connection's reads."""
        if isinstance(self.body, Http1Body):
            return self.body._on_data is not None
        return isinstance(self.body._response.content._waiter, _Splice)

    def failed(self) -> bool:
        """The upstream's failure is recorded, not yet raised."""
        if isinstance(self.body, Http1Body):
            return self.body._error is not None
        return self.body._response.content.exception() is not None


async def buffered(response: httpx.Response, size: int) -> None:
    """Wait until ``size`` body bytes arrived (read or not)."""

    async def wait() -> None:
        while Probe(response).received() < size:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), LIVENESS)


async def splice(response: httpx.Response, on_data: Reads, flow: Flow | None = None) -> None:
    await asyncio.wait_for(stream(response).splice(on_data, flow or Flow()), LIVENESS)


async def still(seconds: float = 0.2) -> None:
    """Give the loop time to deliver anything already on its way (for checks that nothing came)."""
    await asyncio.sleep(seconds)


# -- delivery -----------------------------------------------------------------------------------


async def test_a_chunked_body_arrives_in_order_and_whole_with_what_was_buffered_before() -> None:
    early = [piece(i) for i in range(3)]
    late = [piece(i) for i in range(3, 200)]
    go = asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + b"".join(framed(p) for p in early))
        await writer.drain()
        await go.wait()
        for i, p in enumerate(late):
            writer.write(framed(p))
            if i % 10 == 0:  # some reads of one HTTP chunk, some of several
                await writer.drain()
                await asyncio.sleep(0.001)
        writer.write(END)
        await writer.drain()
        await asyncio.sleep(LIVENESS)  # the body ended; the connection stays open

    reads = Reads()
    async with upstream(respond) as url, opened(url) as (_, response):
        await buffered(response, sum(map(len, early)))
        task = asyncio.create_task(splice(response, reads))
        await reads.until(lambda data: len(data) > 0)
        assert reads.reads[0] == b"".join(early)  # handed over at once, in one read
        go.set()
        await task
        assert reads.data == b"".join(early + late)
        assert not Probe(response).spliced()
        assert Probe(response).ended()


@pytest.mark.parametrize("framing", ["chunked", "content-length", "until-close"])
async def test_every_framing_of_a_body_is_spliced_to_its_end(framing: str) -> None:
    pieces = [piece(i) for i in range(50)]
    go = asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        if framing == "chunked":
            writer.write(CHUNKED)
        elif framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % sum(map(len, pieces)))
        else:
            writer.write(UNTIL_CLOSE)
        await writer.drain()
        await go.wait()
        for p in pieces:
            writer.write(framed(p) if framing == "chunked" else p)
            await writer.drain()
        if framing == "chunked":
            writer.write(END)
        await writer.drain()
        if framing == "until-close":
            writer.close()  # the body's end: a clean close
            return
        await asyncio.sleep(LIVENESS)

    reads = Reads()
    async with upstream(respond) as url, opened(url) as (_, response):
        task = asyncio.create_task(splice(response, reads))
        await asyncio.sleep(0)
        go.set()
        await task
        assert reads.data == b"".join(pieces)


async def test_a_body_already_complete_before_the_splice_is_handed_over_and_ends_it() -> None:
    body = b"".join(piece(i) for i in range(5))

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(body) + END)
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    reads = Reads()
    async with upstream(respond) as url, opened(url) as (_, response):
        await buffered(response, len(body))
        while not Probe(response).ended():
            await asyncio.sleep(0.005)
        await splice(response, reads)
        assert reads.reads == [body]


async def test_on_data_returning_true_ends_the_splice_and_nothing_more_is_handed_over() -> None:
    go, more = asyncio.Event(), asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)))
        await writer.drain()
        await go.wait()
        writer.write(framed(b"data: [DONE]\n\n"))
        await writer.drain()
        await more.wait()
        writer.write(framed(piece(1)) + framed(piece(2)))  # after the consumer said it had enough
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    reads = Reads(stop_at=b"[DONE]")
    async with upstream(respond) as url, opened(url) as (_, response):
        task = asyncio.create_task(splice(response, reads))
        await reads.until(lambda data: piece(0) in data)
        go.set()
        await task  # returns although the body has not ended
        assert reads.data == piece(0) + b"data: [DONE]\n\n"
        assert not Probe(response).spliced()
        more.set()
        await buffered(response, len(reads.data) + len(piece(1)) * 2)
        assert reads.data == piece(0) + b"data: [DONE]\n\n"  # the later bytes stayed in the buffer


class Boom(Exception):
    pass


@pytest.mark.parametrize("when", ["buffered", "received"])
async def test_an_exception_from_on_data_ends_the_splice_and_is_raised_as_it_is(when: str) -> None:
    go, more = asyncio.Event(), asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)))
        await writer.drain()
        await go.wait()
        writer.write(framed(b"data: bad\n\n"))
        await writer.drain()
        await more.wait()
        writer.write(framed(piece(1)))
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    failure = Boom("the consumer failed")
    reads = Reads(fail_at=piece(0) if when == "buffered" else b"bad", fail_with=failure)
    async with upstream(respond) as url, opened(url) as (_, response):
        if when == "buffered":
            await buffered(response, len(piece(0)))
        task = asyncio.create_task(splice(response, reads))
        if when == "received":
            await reads.until(lambda data: piece(0) in data)
            go.set()
        with pytest.raises(Boom) as raised:
            await task
        assert raised.value is failure
        count = len(reads.reads)
        assert not Probe(response).spliced()
        go.set()
        more.set()
        await still()
        assert len(reads.reads) == count  # nothing handed over after the failure


async def test_an_os_error_from_on_data_is_not_taken_for_an_upstream_failure() -> None:
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)))
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    failure = BrokenPipeError("the consumer's own socket")
    reads = Reads(fail_at=piece(0), fail_with=failure)
    async with upstream(respond) as url, opened(url) as (_, response):
        with pytest.raises(BrokenPipeError):
            await splice(response, reads)


# -- upstream failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["close", "reset"])
async def test_an_upstream_cut_mid_body_raises_after_the_bytes_before_it(cut: str) -> None:
    before = piece(0) + piece(1)
    received = asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)) + framed(piece(1)) + b"40\r\ndata: half an ev")
        await writer.drain()
        await received.wait()
        if cut == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        writer.transport.abort()

    reads = Reads()
    async with upstream(respond) as url, opened(url) as (_, response):
        task = asyncio.create_task(splice(response, reads))
        await reads.until(lambda data: data.startswith(before))
        received.set()
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await task
        assert reads.data.startswith(before)
        assert not Probe(response).spliced()


async def test_an_upstream_cut_is_raised_after_the_bytes_that_arrived_with_it() -> None:
    # The last bytes and the close arrive before the splice starts: handed over, then raised.
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)) + framed(piece(1)))
        await writer.drain()
        writer.transport.abort()

    reads = Reads()
    async with upstream(respond) as url, opened(url) as (_, response):
        while not Probe(response).failed():
            await asyncio.sleep(0.005)
        with pytest.raises(httpx.RemoteProtocolError):
            await splice(response, reads)
        assert reads.data == piece(0) + piece(1)


async def test_a_silence_longer_than_the_read_timeout_raises_read_timeout() -> None:
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)))
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    reads = Reads()
    async with upstream(respond) as url, opened(url, read=0.3) as (_, response):
        with pytest.raises(httpx.ReadTimeout):
            await splice(response, reads)
        assert reads.data == piece(0)
        assert not Probe(response).spliced()


async def test_the_read_timeout_is_the_silence_between_reads_not_the_whole_body() -> None:
    # Reads every few milliseconds for well over the read timeout: no timeout.
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED)
        for i in range(60):
            writer.write(framed(piece(i)))
            await writer.drain()
            await asyncio.sleep(0.025)
        writer.write(END)
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    reads = Reads()
    async with upstream(respond) as url, opened(url, read=1.0) as (_, response):
        await splice(response, reads)
        assert reads.data == b"".join(piece(i) for i in range(60))


# -- flow control --------------------------------------------------------------------------------


async def spliced(response: httpx.Response, on_data: Reads, flow: Flow) -> asyncio.Task[None]:
    """The splice, running: its task once it waits for the upstream's next bytes."""
    task = asyncio.create_task(splice(response, on_data, flow))

    async def wait() -> None:
        while not Probe(response).spliced():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), LIVENESS)
    return task


async def paused_then_resumed(bound: float = LIVENESS, read: float = LIVENESS) -> None:
    rest = [piece(i) for i in range(1, 40)]
    first, go, sent = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED)
        await writer.drain()
        await first.wait()
        writer.write(framed(piece(0)))
        await writer.drain()
        await go.wait()
        for p in rest:  # the upstream keeps sending while the reader is paused
            writer.write(framed(p))
            await writer.drain()
        writer.write(END)
        await writer.drain()
        sent.set()
        await asyncio.sleep(LIVENESS)  # a keep-alive upstream: the connection stays open

    flow = Flow()
    reads = Reads(fills=flow)
    async with upstream(respond) as url, opened(url, read=read) as (_, response):
        task = await spliced(response, reads, flow)
        first.set()
        await reads.until(lambda data: piece(0) in data)
        assert flow.callback is not None  # registered once the reader said it was full
        go.set()
        await asyncio.wait_for(sent.wait(), LIVENESS)
        await still()
        assert reads.data == piece(0)  # nothing handed over while paused...
        assert not task.done()
        reads.fills = None
        flow.is_paused = False
        callback, flow.callback = flow.callback, None
        callback()  # ...until the reader can take more
        await asyncio.wait_for(task, bound)
        assert reads.data == piece(0) + b"".join(rest)
        assert flow.registered == 1


async def test_a_paused_reader_pauses_the_upstream_connection_until_its_callback() -> None:
    await paused_then_resumed()


async def test_a_paused_reader_is_resumed_with_aiohttps_python_parser_too(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    if body != "aiohttp":
        pytest.skip("aiohttp's own parser: the http1 body has one parser, httptools'")
    import aiohttp.client_proto
    from aiohttp.http_parser import HttpResponseParserPy

    monkeypatch.setattr(aiohttp.client_proto, "HttpResponseParser", HttpResponseParserPy)
    await paused_then_resumed(bound=3.0, read=1.0)


async def test_a_splice_that_starts_paused_gets_the_whole_rest_after_the_callback() -> None:
    go = asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)))  # read with the head: buffered before the splice
        await writer.drain()
        await go.wait()
        writer.write(framed(piece(1)) + framed(piece(2)) + END)  # one network read
        await writer.drain()
        await asyncio.sleep(LIVENESS)  # a keep-alive upstream: the connection stays open

    reads = Reads()
    flow = Flow(paused=True)  # the reader is full already when the splice begins
    async with upstream(respond) as url, opened(url, read=1.0) as (_, response):
        await buffered(response, len(piece(0)))
        task = asyncio.create_task(stream(response).splice(reads, flow))
        await reads.until(lambda data: piece(0) in data)
        assert flow.callback is not None
        go.set()
        await still()
        flow.is_paused = False
        flow.callback()
        await asyncio.wait_for(task, 3.0)
        assert reads.data == piece(0) + piece(1) + piece(2)


async def test_each_pause_waits_for_its_own_callback() -> None:
    go = [asyncio.Event() for _ in range(4)]

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED)
        await writer.drain()
        for i, event in enumerate(go):
            await event.wait()
            writer.write(framed(piece(i)))
            await writer.drain()
        writer.write(END)
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    flow = Flow()
    reads = Reads(fills=flow)
    async with upstream(respond) as url, opened(url) as (_, response):
        task = await spliced(response, reads, flow)
        go[0].set()
        for i in range(1, 4):
            await reads.until(lambda data, i=i: piece(i - 1) in data)
            assert flow.registered == i and flow.callback is not None
            go[i].set()
            await still(0.1)
            assert piece(i) not in reads.data  # paused again after the last read
            callback, flow.callback = flow.callback, None
            flow.is_paused = False  # drained: writable (the next read fills it again)
            callback()
        await reads.until(lambda data: piece(3) in data)
        reads.fills = None
        flow.is_paused = False
        if flow.callback is not None:  # paused after the last read (the end may not be parsed yet)
            flow.callback()
        await task
        assert reads.data == b"".join(piece(i) for i in range(4))


async def test_a_pause_longer_than_the_read_timeout_is_not_an_upstream_timeout() -> None:
    first, go = asyncio.Event(), asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED)
        await writer.drain()
        await first.wait()
        writer.write(framed(piece(0)))
        await writer.drain()
        await go.wait()
        writer.write(framed(piece(1)))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(END)
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    flow = Flow()
    reads = Reads(fills=flow)
    async with upstream(respond) as url, opened(url, read=0.3) as (_, response):
        task = await spliced(response, reads, flow)
        first.set()
        await reads.until(lambda data: piece(0) in data)
        go.set()  # the upstream answers at once; the reader is the one who is slow
        await asyncio.sleep(1.0)  # paused for more than three read timeouts
        assert not task.done()
        reads.fills = None
        flow.is_paused = False
        assert flow.callback is not None
        flow.callback()
        await task
        assert reads.data == piece(0) + piece(1)


# -- cancellation --------------------------------------------------------------------------------


@pytest.mark.parametrize("paused", [False, True])
async def test_cancelling_the_splice_detaches_it(paused: bool) -> None:
    more = asyncio.Event()

    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED + framed(piece(0)))
        await writer.drain()
        await more.wait()
        writer.write(framed(piece(1)))
        await writer.drain()
        await asyncio.sleep(LIVENESS)

    reads = Reads()
    flow = Flow(paused=paused)
    async with upstream(respond) as url, opened(url) as (transport, response):
        probe = Probe(response)
        low_water = content(response)._low_water if _BODY == "aiohttp" else None
        task = asyncio.create_task(stream(response).splice(reads, flow))
        await reads.until(lambda data: piece(0) in data)
        assert probe.spliced()  # what this test checks is undone below
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not probe.spliced()
        if low_water is not None:
            assert content(response)._low_water == low_water
        assert flow.callback is None  # a paused splice forgets its callback
        more.set()
        await still()
        assert reads.data == piece(0)
        await response.aclose()  # a closed response afterwards is fine

        # The transport goes on serving (the connection was not left half-read in the pool).
        async with upstream(_short_reply) as second:
            again = await transport.open("POST", second, b"{}", {}, httpx.Timeout(LIVENESS))
            assert await again.aread() == b"fine"
            await again.aclose()


async def _short_reply(writer: asyncio.StreamWriter) -> None:
    writer.write(CHUNKED + framed(b"fine") + END)
    await writer.drain()
    await asyncio.sleep(LIVENESS)
