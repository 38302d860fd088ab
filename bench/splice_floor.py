"""What a Python gateway's streamed chunk costs at the floor: the design issue 15's 15 µs target needs.

A relay written at the asyncio protocol level (uvloop): each client connection gets one upstream
connection, and every read on either side is written to the other from ``data_received``, with
no task, no generator, no ASGI. With ``--check`` each upstream read also has its SSE events cut
out and decoded with orjson (what the gateway's pass-through must do to know the commit point,
the finish reason and usage). Run against the same fake upstream and realistic streams as the
gateway, it measures the CPU per chunk that splicing a committed stream below the generator chain
would cost:

    python bench/splice_floor.py                 # 64 and 256 streams of 20 and 200 chunks

It is a measurement, not a gateway: it forwards bytes and routes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateways
import orjson
import streams

__all__ = ["relay"]


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport, check: bool) -> None:
        self.client = client
        self.check = check
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        if self.check:
            self._inspect(data)
        self.client.write(data)

    def _inspect(self, data: bytes) -> None:
        # The pass-through's minimum per read: cut out complete events, decode each.
        pending = self.pending + data
        end = pending.rfind(b"\n\n")
        if end < 0:
            self.pending = pending
            return
        block, self.pending = pending[:end], pending[end + 2 :]
        for line in block.split(b"\n"):
            start = line.find(b"data: {")
            if start >= 0:
                orjson.loads(line[start + 6 :])

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int, check: bool) -> None:
        self.upstream_port = upstream_port
        self.check = check
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_connection(
            lambda: _Upstream(self.transport, self.check),  # type: ignore[arg-type]
            "127.0.0.1",
            self.upstream_port,
        )
        self.upstream = upstream
        for data in self.early:
            upstream.write(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def relay(port: int, upstream_port: int, check: bool) -> None:
    server = await asyncio.get_running_loop().create_server(
        lambda: _Client(upstream_port, check), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def _start(workdir: Path, cpus: set[int] | None, upstream: int, check: bool) -> gateways.Gateway:
    port = gateways.free_port()
    argv = [sys.executable, __file__, "--serve", str(port), "--upstream", str(upstream)]
    argv += ["--check"] if check else []
    proc = gateways.spawn("splice", argv, workdir, cpus)
    started = time.perf_counter()
    startup = gateways.wait_first_200(proc, port, "/v1/chat/completions", started, 30)
    return gateways.Gateway("splice+check" if check else "splice", port, "/v1/chat/completions", proc, startup)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", default="64,256")
    parser.add_argument("--chunks", default="20,200", help="stream lengths (the marginal needs two)")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per cell (longer than a stream)")
    args = parser.parse_args(argv)
    if args.serve:
        import uvloop

        uvloop.run(relay(args.serve, args.upstream, args.check))
        return 0
    load_cpus, gateway_cpus = gateways.cores()
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llm-factory-splice-") as tmp:
        workdir = Path(tmp)
        upstream = gateways.start_upstream(workdir, load_cpus)
        try:
            for check in (False, True):
                gw = _start(workdir, gateway_cpus, upstream.port, check)
                try:
                    for level in (int(c) for c in args.concurrency.split(",")):
                        for chunks in (int(n) for n in args.chunks.split(",")):
                            cell = streams.measure(gw, level, chunks, args.duration, 1.0)
                            cells.append(cell)
                            print(
                                f"{gw.name} c={level} chunks={chunks}: {cell['rps']:.0f} streams/s "
                                f"cpu/chunk {cell['cpu_us_per_chunk']}",
                                file=sys.stderr,
                            )
                    found = streams.marginal(cells, gw.name, "pass-through")
                    if found is not None:
                        print(f"{gw.name}: {found[1]:.1f} µs CPU per extra chunk at c={found[0]}", file=sys.stderr)
                finally:
                    if gw.proc is not None:
                        gw.proc.stop()
        finally:
            if upstream.proc is not None:
                upstream.proc.stop()
    print(json.dumps(cells, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
