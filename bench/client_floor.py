"""What the upstream call of a non-streamed request costs, against the floor.

Issue 15's "10% of nginx" target asks for about 175 µs of gateway CPU per non-streamed request;
the upstream call was its largest layer (~75 µs through aiohttp's session). This measures that
layer alone: the same POST to the fake upstream, in a closed loop of keep-alive connections, through

- ``transport``: the core's ``AiohttpTransport.post``, the gateway's fast path for a non-streamed
  call, reading the whole body within its size cap: through ``_http1``, the core's HTTP/1.1
  client on httptools, as every call without a proxy goes;
- ``aiohttp``: the same call through aiohttp's session, as a call through a proxy goes (and as
  every call went before ``_http1``);
- ``protocol``: a minimal HTTP/1.1 client written at the asyncio protocol level with httptools'
  parser (uvicorn's), one request in flight per connection: the floor ``_http1`` approaches
  (without its pool, caps, timeouts and failure handling). It handles only what this upstream
  sends (a Content-Length body on a kept-alive connection): a measurement, not a client.

    python bench/client_floor.py                 # 32 connections, 16,000 requests each way

CPU per request is this process's user + system time over the measured requests (uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateways

__all__ = ["measure"]

_BODY = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}).encode()
_PATH = "/v1/chat/completions"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Connection(asyncio.Protocol):
    """One kept-alive connection; ``request()`` sends the POST and returns the reply's body."""

    def __init__(self, head: bytes) -> None:
        import httptools

        self.head = head
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the upstream closed the connection"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        if waiter is not None and self.parser.get_status_code() == 200:
            waiter.set_result(body)
        elif waiter is not None:
            waiter.set_exception(RuntimeError(f"status {self.parser.get_status_code()}"))

    async def request(self) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(self.head)
        return await self.waiter


async def _closed_loop(call: Any, connections: int, requests: int) -> tuple[float, float]:
    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    per = max(1, requests // connections)
    await asyncio.gather(*(worker(max(1, per // 10)) for _ in range(connections)))  # warm: connections open
    cpu, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker(per) for _ in range(connections)))
    done = per * connections
    return 1e6 * (_cpu() - cpu) / done, done / (time.perf_counter() - started)


async def measure(port: int, connections: int, requests: int) -> list[dict[str, Any]]:
    """CPU µs per request and requests/s of each client against 127.0.0.1:``port``."""
    import httpx

    from llm_factory_core._aiohttp import AiohttpTransport

    cells: list[dict[str, Any]] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {gateways.API_KEY}"}
    url = f"http://127.0.0.1:{port}{_PATH}"
    timeout = httpx.Timeout(60.0, connect=10.0)
    for name in ("transport", "aiohttp"):
        transport = AiohttpTransport()  # the gateway's own: its fast path, ``post``, is what a request calls
        if name == "aiohttp":
            transport._http1 = None  # the path a call through a proxy takes

        async def call(transport: AiohttpTransport = transport) -> None:
            await transport.post(url, _BODY, headers, timeout, max_body=1 << 24, max_error_body=1 << 16)

        try:
            cpu, rps = await _closed_loop(call, connections, requests)
        finally:
            await transport.aclose()
        cells.append({"client": name, "cpu_us_per_request": round(cpu, 1), "rps": round(rps)})

    head = (
        f"POST {_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + f"Content-Length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY
    loop = asyncio.get_running_loop()
    pool: list[_Connection] = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(head), "127.0.0.1", port)
        pool.append(protocol)
    free = asyncio.Queue[_Connection]()
    for connection in pool:
        free.put_nowait(connection)

    async def via_protocol() -> None:
        connection = free.get_nowait()  # a closed loop of ``connections`` workers: never empty
        try:
            await connection.request()
        finally:
            free.put_nowait(connection)

    try:
        cpu, rps = await _closed_loop(via_protocol, connections, requests)
    finally:
        for connection in pool:
            if connection.transport is not None:
                connection.transport.close()
    cells.append({"client": "protocol", "cpu_us_per_request": round(cpu, 1), "rps": round(rps)})
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=16_000, help="measured requests per client")
    args = parser.parse_args(argv)
    load_cpus, client_cpus = gateways.cores()
    with tempfile.TemporaryDirectory(prefix="llm-factory-client-") as tmp:
        upstream = gateways.start_upstream(Path(tmp), load_cpus)
        try:
            if client_cpus:
                os.sched_setaffinity(0, client_cpus)  # the client gets the core the gateway would
            import uvloop

            cells = uvloop.run(measure(upstream.port, args.connections, args.requests))
        finally:
            if upstream.proc is not None:
                upstream.proc.stop()
    for cell in cells:
        print(
            f"{cell['client']}: {cell['cpu_us_per_request']} µs CPU per request, {cell['rps']} req/s", file=sys.stderr
        )
    print(json.dumps(cells, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
