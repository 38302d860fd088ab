"""The splice of committed pass-through streams, end to end over real sockets: once a stream is
committed, each upstream read is checked and written to the client inside the upstream
connection's ``data_received`` (``FastResponseStream.splice``, ``_passthrough.ClientSink``,
``_protocol.ResponseSplice``).

The splice engages on the aiohttp transport only; on httpx the same streams take the generator
path, so every test whose outcome must not depend on the path runs on both (``http_transport``)
and checks which path it took (``path``). The upstream is ``RawUpstream``: a chunked body written
exactly as scripted, from its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("aiohttp")

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_server import ServerSettings, create_app
from tests.core.raw_upstream import RawRequest, RawUpstream, head

from .conftest import SplicePath as Path
from .helpers import ServerThread, garbage_left_by, serving_factory
from .test_passthrough import DONE, ERROR, HEL, LO, ROLE, STOP, USAGE, chunk

LIVENESS = 10.0  # seconds: only ever a bound on a wait that should end much sooner

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
DEADLINE = "the stream broke after it started: UpstreamTimeoutError: no end of stream within the limit"
SSE_CHUNKED = (("content-type", "text/event-stream"), ("transfer-encoding", "chunked"))


def _kernel_send_buffer() -> int:
    """The most a loopback socket's send buffer grows to (Linux autotunes it up to this)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
            return int(limits.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


FILLS_A_CONNECTION = _kernel_send_buffer() * 3 // 2 + 1024 * 1024
"""Bytes that a client that does not read cannot take in before the gateway's writes back up."""


def framed(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# -- the upstream ----------------------------------------------------------------------------------

Script = Callable[[RawUpstream, RawRequest, asyncio.StreamWriter], Any]


class Upstream:
    """``RawUpstream`` answering each request with the next script (then ``complete``); records
    whether a stream's connection was closed under it (``cut``: a write failed)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.cut = threading.Event()
        self.raw = RawUpstream(self._respond)

    async def _respond(self, up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
        script = self.scripts.pop(0) if self.scripts else complete()
        await script(up, request, writer)

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> bool:
        """Write and wait for it to leave; False once the gateway closed the connection."""
        if writer.transport.is_closing():
            self.cut.set()
            return False
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError):
            self.cut.set()
            return False
        return True


def stream_of(
    upstream: Upstream,
    writes: list[bytes],
    *,
    pause: float = 0.01,
    end: bool = True,
    then: Callable[[asyncio.StreamWriter], Any] | None = None,
) -> Script:
    """A chunked SSE reply: each of ``writes`` as its own HTTP chunk, ``pause`` apart; the body's
    end; then ``then(writer)`` or, by default, the connection held open (a keep-alive upstream)."""

    async def script(up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
        await upstream.write(writer, head(200, SSE_CHUNKED))
        for data in writes:
            if not await upstream.write(writer, framed(data)):
                return
            await asyncio.sleep(pause)
        if end:
            await upstream.write(writer, b"0\r\n\r\n")
        if then is not None:
            await then(writer)
        else:
            await asyncio.sleep(3600)

    return script


def complete() -> Script:
    async def script(up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = b"".join(framed(d) for d in (ROLE, HEL, LO, STOP, DONE)) + b"0\r\n\r\n"
        writer.write(head(200, SSE_CHUNKED) + body)
        await writer.drain()
        await asyncio.sleep(3600)

    return script


def endless(upstream: Upstream, writes: list[bytes], *, every: bytes = LO, pause: float = 0.02) -> Script:
    """``writes``, then ``every`` again and again until the gateway closes the connection (at most
    ``LIVENESS`` and a half)."""

    async def script(up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
        await upstream.write(writer, head(200, SSE_CHUNKED))
        for data in writes:
            if not await upstream.write(writer, framed(data)):
                return
        deadline = time.monotonic() + LIVENESS * 1.5
        while time.monotonic() < deadline:
            if not await upstream.write(writer, framed(every)):
                return
            await asyncio.sleep(pause)

    return script


# -- the gateway -----------------------------------------------------------------------------------


@contextlib.contextmanager
def gateway(
    http_transport: str, upstream: Upstream, *, deployment: dict[str, Any] | None = None, **router: Any
) -> Iterator[ServerThread]:
    with upstream.raw as raw:
        config = ModelConfig(
            provider="openai",
            model_name="gpt-4o",
            api_key="sk-up-0001",
            api_base=f"{raw.url}/v1",
            **(deployment or {}),
        )
        with serving_factory(http_transport, config, num_retries=0, cooldown=0.0, **router) as server:
            yield server


def post(server: ServerThread, **extra: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json={**BODY, **extra}, timeout=LIVENESS)


def last_event(content: bytes) -> dict[str, Any]:
    events = [e for e in content.split(b"\n\n") if e]
    return json.loads(events[-1].removeprefix(b"data: "))


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]


class RawClient:
    """A client on a plain socket: the request sent, the reply read when (and as fast as) the
    test says. ``rcvbuf`` shrinks its receive buffer (set before connecting, so it holds)."""

    def __init__(self, server: ServerThread, *, rcvbuf: int | None = None, **extra: Any) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(LIVENESS)
        self.sock.connect((host, int(port)))
        body = json.dumps({**BODY, **extra}).encode()
        self.sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s:%s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (host.encode(), port.encode(), len(body), body)
        )
        self.data = bytearray()

    def read_until(self, predicate: Callable[[bytearray], bool], *, size: int = 65536, nap: float = 0.0) -> bytes:
        deadline = time.monotonic() + LIVENESS
        while not predicate(self.data):
            assert time.monotonic() < deadline, bytes(self.data[-300:])
            received = self.sock.recv(size)
            assert received, bytes(self.data[-300:])  # the gateway closed the connection
            self.data += received
            if nap:
                time.sleep(nap)
        return bytes(self.data)

    def read_reply(self, **read: Any) -> bytes:
        """The whole chunked reply (keep-alive: it ends with the last chunk); its body."""
        head, rest = self.read_until(lambda data: data.endswith(b"\r\n0\r\n\r\n"), **read).split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        body = []
        while True:
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                return b"".join(body)
            body.append(rest[:size])
            rest = rest[size + 2 :]

    def close(self) -> None:
        self.sock.close()


# -- delivery ------------------------------------------------------------------------------------


def test_plain_chunks_reach_the_client_as_the_upstream_sent_them(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, STOP, DONE], pause=0.02))
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert reply.status_code == 200
    assert reply.content == ROLE + HEL + LO + STOP + DONE
    assert reply.content.count(DONE) == 1
    path.took_the_splice()


def test_a_long_stream_arrives_complete_and_in_order(http_transport: str, path: Path) -> None:
    words = [chunk({"content": f" w{i:03d}"}) for i in range(300)]
    upstream = Upstream()
    # Most chunks in reads of their own, some several to a read.
    upstream.scripts.append(stream_of(upstream, [ROLE, HEL, *words, STOP, DONE], pause=0.001))
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert reply.content == ROLE + HEL + b"".join(words) + STOP + DONE
    path.took_the_splice()
    if http_transport == "aiohttp":
        assert path.sink_writes >= 5  # the stream's reads went through the splice, not one late one


def test_done_ends_the_reply_while_the_upstream_holds_its_connection_open(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, STOP, DONE], end=False))  # no body end, no close
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert reply.content == ROLE + HEL + LO + STOP + DONE
    path.took_the_splice()


def test_the_usage_chunk_is_recorded_and_sent_only_when_asked(
    http_transport: str, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    upstream = Upstream()
    for _ in range(2):
        upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, STOP, USAGE, DONE]))
    with gateway(http_transport, upstream) as server:
        asked = post(server, stream_options={"include_usage": True})
        not_asked = post(server)
    assert asked.content == ROLE + HEL + LO + STOP + USAGE + DONE
    assert not_asked.content == ROLE + HEL + LO + STOP + DONE
    lines = access_lines(caplog)
    assert len(lines) == 2 and all("tokens=9/2" in line for line in lines), lines
    path.took_the_splice()


# -- failures ------------------------------------------------------------------------------------


def test_an_error_event_after_the_commit_ends_the_stream_with_it(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, ERROR], end=False))  # and the connection open
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert reply.status_code == 200
    assert reply.content.startswith(ROLE + HEL + LO)
    assert last_event(reply.content)["error"]["message"].startswith(
        "the stream broke after it started: ServerError: the model crashed"
    )
    assert DONE not in reply.content
    path.took_the_splice()


@pytest.mark.parametrize("where", ["between events", "inside an event"])
def test_an_upstream_cut_mid_stream_ends_it_with_an_error_event(http_transport: str, path: Path, where: str) -> None:
    upstream = Upstream()
    tail = [] if where == "between events" else [STOP[:25]]

    async def cut(writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, *tail], end=False, then=cut))
    with gateway(http_transport, upstream) as server:
        reply = post(server)
        again = post(server)  # and the gateway goes on serving
    assert reply.status_code == 200
    # What came before the cut, then the error event alone: nothing of the event the cut went through.
    assert reply.content.startswith(ROLE + HEL + LO)
    rest = reply.content.removeprefix(ROLE + HEL + LO)
    assert rest.startswith(b"data: ") and rest.endswith(b"\n\n") and rest.count(b"\n\n") == 1, rest
    assert last_event(rest)["error"]["message"].startswith("the stream broke after it started")
    assert again.content == ROLE + HEL + LO + STOP + DONE
    path.took_the_splice()


def test_the_stream_deadline_ends_a_spliced_stream_with_an_error_event(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    upstream.scripts.append(endless(upstream, [ROLE, HEL], pause=0.05))  # slow, and never done
    with gateway(http_transport, upstream, timeout=1.5) as server:
        reply = post(server)
        again = post(server)
    assert reply.status_code == 200
    assert reply.content.startswith(ROLE + HEL + LO)
    assert last_event(reply.content)["error"]["message"].startswith(DEADLINE)
    assert DONE not in reply.content
    assert upstream.cut.wait(LIVENESS)  # the upstream's connection was closed, not left streaming
    assert again.content == ROLE + HEL + LO + STOP + DONE
    path.took_the_splice()


@pytest.mark.parametrize("http_transport", ["aiohttp"])  # the generator path waits for the client
def test_the_deadline_also_ends_a_splice_paused_for_a_client_that_stopped_reading(
    http_transport: str, path: Path
) -> None:
    big = chunk({"content": "x" * 16000})
    upstream = Upstream()
    upstream.scripts.append(endless(upstream, [ROLE, HEL], every=big, pause=0.0))
    with gateway(http_transport, upstream, timeout=1.5) as server:
        client = RawClient(server, rcvbuf=4096)
        try:
            assert upstream.cut.wait(LIVENESS)  # the deadline passed while nobody read
            body = client.read_reply()
        finally:
            client.close()
    assert body.startswith(ROLE + HEL + big)
    assert last_event(body)["error"]["message"].startswith(DEADLINE)
    assert DONE not in body
    path.took_the_splice()
    assert path.pauses >= 1  # the splice was paused for the client when the deadline hit


# -- the client ------------------------------------------------------------------------------------


def test_a_client_leaving_mid_stream_closes_the_upstream_connection(
    http_transport: str, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    upstream = Upstream()
    upstream.scripts.append(endless(upstream, [ROLE, HEL, LO]))
    with gateway(http_transport, upstream) as server:
        client = RawClient(server)
        try:
            client.read_until(lambda data: data.count(LO) >= 3)  # well into the splice
        finally:
            client.close()
        assert upstream.cut.wait(LIVENESS)
        again = post(server)
        deadline = time.monotonic() + LIVENESS
        while len(access_lines(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = access_lines(caplog)
    assert again.content == ROLE + HEL + LO + STOP + DONE
    assert len(lines) == 2, lines
    assert sorted(" status=499 " in line for line in lines) == [False, True], lines  # the one that left
    path.took_the_splice()


def test_a_client_leaving_while_the_stream_waits_for_it_closes_the_upstream_connection(
    http_transport: str, path: Path
) -> None:
    big = chunk({"content": "x" * 16000})
    upstream = Upstream()
    upstream.scripts.append(endless(upstream, [ROLE, HEL], every=big, pause=0.0))
    with gateway(http_transport, upstream) as server:
        client = RawClient(server, rcvbuf=4096)  # never reads
        try:
            if http_transport == "aiohttp":
                assert path.paused.wait(LIVENESS)  # the splice waits for the client
            else:
                time.sleep(0.5)
        finally:
            client.close()
        assert upstream.cut.wait(LIVENESS)
        again = post(server)
    assert again.content == ROLE + HEL + LO + STOP + DONE
    path.took_the_splice()


def test_a_slow_client_gets_every_byte_in_order_and_usage_is_recorded(
    http_transport: str, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    words = [chunk({"content": f" {i:04d}" + "y" * 20000}) for i in range(FILLS_A_CONNECTION // 20000)]
    upstream = Upstream()

    async def rest(writer: asyncio.StreamWriter) -> None:
        # Sent once the splice has begun (on httpx: after a moment), so the splice, not the
        # generator path before it, meets the full client connection.
        await asyncio.get_running_loop().run_in_executor(
            None, path.spliced.wait, LIVENESS if http_transport == "aiohttp" else 0.3
        )
        for data in [*words, STOP, USAGE, DONE]:
            if not await upstream.write(writer, framed(data)):
                return
        await upstream.write(writer, b"0\r\n\r\n")
        await asyncio.sleep(3600)

    upstream.scripts.append(stream_of(upstream, [ROLE, HEL], end=False, then=rest))
    with gateway(http_transport, upstream) as server:
        client = RawClient(server, rcvbuf=4096)
        try:
            if http_transport == "aiohttp":
                assert path.paused.wait(LIVENESS)  # the client's connection filled: the splice paused
            else:
                time.sleep(0.5)
            body = client.read_reply(size=16384, nap=0.0005)
        finally:
            client.close()
        lines = access_lines(caplog)
    assert body == ROLE + HEL + b"".join(words) + STOP + DONE
    assert len(lines) == 1 and "tokens=9/2" in lines[0] and " status=200 " in lines[0], lines
    path.took_the_splice()


@pytest.mark.parametrize("http_transport", ["aiohttp"])  # the splice runs on aiohttp only
def test_a_stream_committed_into_a_full_client_connection_still_finishes(http_transport: str, path: Path) -> None:
    first = chunk({"content": "z" * FILLS_A_CONNECTION})  # the first content fills the client's connection
    upstream = Upstream()

    async def rest(writer: asyncio.StreamWriter) -> None:
        await asyncio.get_running_loop().run_in_executor(None, path.paused.wait, LIVENESS)
        await upstream.write(writer, b"".join(framed(d) for d in (LO, STOP, DONE)) + b"0\r\n\r\n")  # one read
        await asyncio.sleep(3600)

    upstream.scripts.append(stream_of(upstream, [ROLE, first], end=False, then=rest))
    with gateway(http_transport, upstream, deployment={"chunk_timeout": 1.0}) as server:
        client = RawClient(server, rcvbuf=4096)
        try:
            if not path.paused.wait(LIVENESS):
                raise RuntimeError("the splice never paused: this test did not set up what it checks")
            time.sleep(0.2)  # the rest reaches the gateway's socket while its reading is paused
            body = client.read_reply()
        finally:
            client.close()
    assert body[-300:] == (ROLE + first + LO + STOP + DONE)[-300:]
    assert body == ROLE + first + LO + STOP + DONE


@pytest.mark.parametrize("http_transport", ["aiohttp"])  # the transport the splice runs on
def test_an_app_whose_send_a_middleware_wraps_is_never_spliced_past_it(http_transport: str, path: Path) -> None:
    """The gateway mounted under a host app's middleware that rewrites the body (as compression
    would): the splice would write past it, so every chunk goes through the wrapped ``send``."""
    from llm_factory_server._protocol import uvicorn_options

    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, LO, STOP, DONE], pause=0.02))
    with upstream.raw as raw:
        config = ModelConfig(provider="openai", model_name="gpt-4o", api_key="sk-up-0001", api_base=f"{raw.url}/v1")
        factory = LLMFactory([config], transport=http_transport, num_retries=0, cooldown=0.0)
        inner = create_app(factory, settings=ServerSettings())

        async def shouting(scope: Any, receive: Any, send: Any) -> None:
            async def rewrite(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.body":
                    message = {**message, "body": message.get("body", b"").replace(b'"lo"', b'"LO"')}
                await send(message)

            await inner(scope, receive, rewrite)

        server = ServerThread(shouting, **uvicorn_options(ServerSettings())).start()
        try:
            reply = post(server)
        finally:
            server.stop()
            factory.close()
    assert reply.status_code == 200
    assert reply.content.count(b'"LO"') == 2 and b'"lo"' not in reply.content
    assert path.splices == 0 and path.sink_writes == 0


def test_spliced_streams_leave_no_reference_cycles(http_transport: str, path: Path) -> None:
    # Each request's objects freed as it ends, not by a garbage-collector pause (the p99).
    upstream = Upstream()
    with gateway(http_transport, upstream) as server, httpx.Client(base_url=server.url, timeout=LIVENESS) as client:

        def streams() -> None:
            for _ in range(5):
                upstream.scripts.append(stream_of(upstream, [ROLE, HEL, LO, STOP, DONE]))
                assert client.post("/v1/chat/completions", json=BODY).content == ROLE + HEL + LO + STOP + DONE

        streams()
        assert garbage_left_by(streams) == []
    path.took_the_splice()
