"""The bundled load generator: closed-loop HTTP/1.1 keep-alive connections on asyncio (uvloop when
installed), responses parsed by httptools (C). Used when wrk is absent, and always for time to
first byte and for the chunk-forwarding check (wrk measures neither).

Each of ``concurrency`` connections sends a request, waits for the whole response, records it and
sends the next, until the deadline. Only requests that start after the warm-up and finish before
the deadline are counted.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools

__all__ = ["LoadResult", "Target", "build_request", "drive", "paced_check", "percentile"]


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    authorization: str = "Bearer sk-bench-0000"


def build_request(target: Target, body: bytes) -> bytes:
    return (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: {target.authorization}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        ttfb = sorted(self.ttfbs)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": self.requests / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
            "ttfb_p50_ms": percentile(ttfb, 50) * 1000 if ttfb else None,
            "error_samples": self.error_samples[:3],
        }


class _Connection(asyncio.Protocol):
    """One keep-alive connection running requests back to back."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.started = 0.0
        self.first_byte = 0.0
        self.tail = b""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.send()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.run.fail(f"bad HTTP: {exc}")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.started and not self.lost.done():
            self.run.fail(f"connection lost mid-request: {exc!r}")
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        self.tail = (self.tail + body)[-32:]

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        status = self.parser.get_status_code()
        run = self.run
        if status != 200:
            run.fail(f"status {status}")
        elif run.stream and not self.tail.endswith(b"data: [DONE]\n\n"):
            run.fail("stream ended without [DONE]")
        else:
            run.done(self.started, self.first_byte, now)
        self.first_byte = 0.0
        self.tail = b""
        if now < run.deadline:
            self.send()
        else:
            self.started = 0.0
            self.close()

    # -- driving ----------------------------------------------------------------------------------

    def send(self) -> None:
        if self.transport is None:
            return
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Run:
    def __init__(self, request: bytes, stream: bool, warm_until: float, deadline: float) -> None:
        self.request = request
        self.stream = stream
        self.warm_until = warm_until
        self.deadline = deadline
        self.result = LoadResult(seconds=deadline - warm_until)

    def done(self, started: float, first_byte: float, finished: float) -> None:
        if started >= self.warm_until and finished <= self.deadline:
            result = self.result
            result.requests += 1
            result.latencies.append(finished - started)
            if first_byte:
                result.ttfbs.append(first_byte - started)

    def fail(self, reason: str) -> None:
        result = self.result
        result.errors += 1
        if len(result.error_samples) < 10:
            result.error_samples.append(reason)


async def drive(
    target: Target,
    body: bytes,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    stream: bool,
    on_window: Callable[[str], None] | None = None,
    ramp: float = 0.0,
) -> LoadResult:
    """Run closed-loop load; ``on_window("start" | "end")`` is called when the counted window
    opens and closes (the caller samples the gateway's CPU time there). ``ramp``: the connections
    start spread evenly over that many seconds (within the warm-up) instead of all at once, so a
    closed loop of long requests is steady load, not ``concurrency`` arrivals in one instant
    repeating every request's duration."""
    loop = asyncio.get_running_loop()
    now = time.perf_counter()
    run = _Run(build_request(target, body), stream, now + warmup, now + warmup + duration)
    if on_window is not None:
        loop.call_later(warmup, on_window, "start")
    connections: list[_Connection] = []

    async def connection(delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        while time.perf_counter() < run.deadline:
            try:
                _, protocol = await loop.create_connection(lambda: _Connection(run), target.host, target.port)
            except OSError as exc:
                run.fail(f"connect: {exc}")
                await asyncio.sleep(0.05)
                continue
            connections.append(protocol)
            await protocol.lost

    tasks = [loop.create_task(connection(ramp * i / concurrency)) for i in range(concurrency)]
    await asyncio.sleep(max(0.0, run.deadline - time.perf_counter()))
    if on_window is not None:
        on_window("end")
    try:
        # In-flight requests finish (they are not counted); a stuck one is cut after a grace period.
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    except TimeoutError:
        for c in connections:
            c.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return run.result


class _Paced(asyncio.Protocol):
    """Records when each piece of a streaming response arrives and how many SSE events it holds."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reads: list[tuple[float, int]] = []
        self.events = 0
        self.complete: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        # One socket read may hold several chunks of the chunked encoding: count per read.
        self.events = 0
        self.parser.feed_data(data)
        if self.events:
            self.reads.append((time.perf_counter(), self.events))

    def on_body(self, body: bytes) -> None:
        self.events += body.count(b"data: ")

    def on_message_complete(self) -> None:
        if not self.complete.done():
            self.complete.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete.done():
            self.complete.set_exception(ConnectionError(f"connection lost: {exc!r}"))


async def paced_check(target: Target, body: bytes, repeats: int = 3) -> dict[str, Any]:
    """Stream a response whose upstream chunks are 10 ms apart; report how many SSE events arrive
    per socket read after the first (1.0: every chunk forwarded on its own, none held back to be
    batched) and the median gap between reads (about 10 ms when nothing is batched)."""
    loop = asyncio.get_running_loop()
    pieces = events = 0
    gaps: list[float] = []
    for _ in range(repeats):
        transport, protocol = await loop.create_connection(_Paced, target.host, target.port)
        try:
            transport.write(build_request(target, body))
            await asyncio.wait_for(protocol.complete, timeout=30)
        finally:
            transport.close()
        reads = protocol.reads[1:]  # the first piece may hold the role chunk too: the commit point
        pieces += len(reads)
        events += sum(n for _, n in reads)
        times = [t for t, _ in reads]
        gaps.extend(b - a for a, b in itertools.pairwise(times))
    gaps.sort()
    return {
        "events": events,
        "body_pieces": pieces,
        "events_per_piece": events / pieces if pieces else None,
        "median_gap_ms": percentile(gaps, 50) * 1000 if gaps else None,
    }
