"""A raw HTTP/1.1 upstream on 127.0.0.1 for transport tests: it records each request exactly as it
arrived on the socket (request line bytes included) and answers with whatever bytes a test says,
including what no well-behaved server (nor ``testing.serve_handler``, which drops
``Content-Encoding``) would send: gzip bombs, unknown encodings, endless lines, no answer at all."""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawRequest:
    line: bytes
    """The request line exactly as sent: ``POST /path?query HTTP/1.1``."""
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> bytes:
        return self.line.split(b" ")[1]


Respond = Callable[["RawUpstream", RawRequest, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request off ``reader``: its head (through the blank line) and its ``Content-Length`` body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


@dataclass
class RawUpstream:
    """``with RawUpstream(respond) as up: up.url``; ``respond(up, request, writer)`` writes the
    whole answer (the connection closes after it)."""

    respond: Respond
    requests: list[RawRequest] = field(default_factory=list)
    open_connections: int = 0
    sent: int = 0
    """Body bytes the ``stream_body`` helper managed to write."""

    def __enter__(self) -> RawUpstream:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="raw-upstream")
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            line = (await reader.readline()).rstrip(b"\r\n")
            headers: dict[str, str] = {}
            while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = raw.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = RawRequest(line, headers, body)
            self.requests.append(request)
            await self.respond(self, request, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            writer.transport.abort()  # never wait for a client that stopped reading

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def head(status: int = 200, headers: Iterable[tuple[str, str]] = (), *, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers] + ["connection: close"]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def whole(body: bytes, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Respond:
    async def respond(up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, headers, length=len(body)) + body)

    return respond


def stream_body(
    pieces: Callable[[], Iterable[bytes]], status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Respond:
    """A body of ``pieces()`` ended by closing the connection; ``up.sent`` counts what was written."""

    async def respond(up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, headers))
        for piece in pieces():
            writer.write(piece)
            await writer.drain()
            up.sent += len(piece)

    return respond


async def hang(up: RawUpstream, request: RawRequest, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


def gzip_bomb(size: int, byte: bytes = b"\0", *, wbits: int = 31) -> bytes:
    """``size`` bytes of ``byte`` gzip-compressed (about 1000:1)."""
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = byte * (1 << 20)
    parts = [z.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + z.flush()


def completion(text: str = "hello") -> bytes:
    return json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
    ).encode()


def sse_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


SSE = (("content-type", "text/event-stream"),)
JSON = (("content-type", "application/json"),)
