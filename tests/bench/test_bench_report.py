"""The bench's load shapes and report, without measuring anything: the realistic-stream load starts
its connections spread out (steady load) or all at once (``burst``), and the report compares each
with ``direct`` under the same arrivals."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import loadgen
import report

_REPLY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def _first_requests(ramp: float) -> list[float]:
    """When each of 4 connections of a closed loop sent its first request (seconds after the first)."""
    firsts: list[float] = []

    class Server(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.seen = False

        def data_received(self, data: bytes) -> None:
            if not self.seen:
                self.seen = True
                firsts.append(time.monotonic())
            self.transport.write(_REPLY)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        target = loadgen.Target("127.0.0.1", port, "/v1/chat/completions")
        async with server:
            await loadgen.drive(target, b"{}", concurrency=4, duration=0.2, warmup=0.5, stream=False, ramp=ramp)

    asyncio.run(main())
    return sorted(t - min(firsts) for t in firsts)


def test_the_load_starts_its_connections_spread_over_the_ramp_or_at_once() -> None:
    assert len(spread := _first_requests(0.4)) == 4 and spread[-1] >= 0.2  # at 0, 0.1, 0.2, 0.3 s
    assert len(together := _first_requests(0.0)) == 4 and together[-1] < 0.2


def _stream(target: str, p50: float, arrivals: str | None = None) -> dict[str, Any]:
    cell = {"target": target, "path": "pass-through", "concurrency": 512, "chunks": 20, "requests": 100}
    cell |= {"rps": 1000.0, "p50_ms": p50, "p99_ms": p50 + 5, "errors": 0, "cpu_us_per_chunk": 20.0}
    return cell | ({"arrivals": arrivals} if arrivals else {})


def test_the_report_compares_each_arrival_shape_with_direct_under_the_same_one() -> None:
    results: dict[str, Any] = {
        "cells": [],
        "gateways": {},
        "streams": [
            _stream("direct", 500.0),
            _stream("llm-factory", 505.0),
            _stream("direct", 520.0, "burst"),
            _stream("llm-factory", 560.0, "burst"),
        ],
    }
    lines = dict((name, (value, met)) for name, value, met in report.targets(results))
    assert lines["512 realistic streams: full-stream overhead p50 ≤ 10 ms, no errors"] == ("+5.0 ms, 0 errors", True)
    burst = lines["512 realistic streams, all starting at once: full-stream overhead p50 ≤ 10 ms, no errors"]
    assert burst == ("+40.0 ms, 0 errors", False)
    table = report._streams_table(results)
    assert any("| llm-factory | pass-through, all at once | 20 | 512 |" in row and "| 40.0 |" in row for row in table)
