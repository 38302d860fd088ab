"""Usage records, written off the request path: never blocking, never failing a request.

``record(event)`` appends to a bounded in-memory queue (a full queue drops the event and counts
it). A pricing thread prices each event (``_prices``), reports its cost to the budgets (on the
event loop, through ``on_cost``), keeps a per-minute summary of the last hour for the status
page, and hands rows to a writer thread, which inserts them in batches (``executemany`` in one
transaction) into the sink. Both work in slices with a short pause between (``_SLICE``), so
the event loop, which shares the GIL with them, never waits behind a whole batch. A slow or
failing database only delays or drops rows (counted, logged once a minute); requests never wait
for it. ``close()`` flushes what is queued, with a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._db import Database, connect
from ._prices import Pricing, TokenCounts

__all__ = ["DatabaseSink", "Sink", "UsageEvent", "UsageRecorder"]

log = logging.getLogger("llm_factory_server.ops")

ROW_COLUMNS = (
    "ts, key_id, key_name, endpoint, model, deployment, provider, stream, status, latency_ms, prompt_tokens, "
    "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost"
)
_INSERT = f"INSERT INTO usage ({ROW_COLUMNS}) VALUES ({', '.join('?' * 17)})"
_BATCH = 500
_WAKE_AT = 256
"""Queued requests that wake the pricing thread at once; below it the thread wakes every
``_INTERVAL``. Waking it per request cost a thread switch (and a GIL hand-off) per request."""
_INTERVAL = 0.2
_SLICE = 32
"""Events priced, or rows written, between pauses. The threads share the GIL (and, when the
gateway is pinned to one core, the CPU) with the event loop: a batch of several hundred in one go
held the loop up for 1-10 ms, the tail of the gateway's latency. A slice is ~0.1-0.2 ms."""
_PAUSE = 0.0002
"""Seconds between slices: long enough for a waiting event loop to take the GIL and the CPU (a
zero sleep releases the GIL, but the thread usually takes it straight back)."""
_NICENESS = 10
"""How much lower than the event loop's the recorder threads' CPU priority is (Linux). Where the
gateway has one core (pinned, or a one-CPU container), a thread woken to price a slice took the
CPU from a request in flight: at one request at a time this was part of the p99 (paired runs:
~1.2-2.2 ms at the same priority, ~0.9-1.1 ms lowered). The threads still run whenever the loop
waits, which is most of the time."""
_SUMMARY_BUCKET = 60.0
_SUMMARY_WINDOW = 3600.0


class UsageEvent:
    """One request, as the request path knows it (cheap to build: no pricing, no I/O)."""

    __slots__ = (
        "deployment",
        "endpoint",
        "estimated",
        "key_id",
        "key_name",
        "latency_ms",
        "model",
        "spend_counter",
        "status",
        "stream",
        "tokens",
        "ts",
    )

    def __init__(
        self,
        *,
        key_id: str | None,
        key_name: str,
        endpoint: str,
        model: str | None,
        deployment: str | None,
        stream: bool,
        status: int,
        latency_ms: float,
        tokens: TokenCounts | None,
        estimated: bool = False,
        spend_counter: tuple[str, float] | None = None,
    ) -> None:
        self.ts = time.time()
        self.key_id = key_id
        self.key_name = key_name
        self.endpoint = endpoint
        self.model = model
        self.deployment = deployment
        self.stream = stream
        self.status = status
        self.latency_ms = latency_ms
        self.tokens = tokens
        self.estimated = estimated
        self.spend_counter = spend_counter
        """The budget counter this request's cost goes to (name, window end); None: no budget."""


class Sink(Protocol):
    def write(self, rows: list[tuple[Any, ...]]) -> None: ...

    def close(self) -> None: ...


class DatabaseSink:
    """Batches into the usage database (SQLite or PostgreSQL); reconnects after a failure."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self._db: Database | None = None

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if self._db is None:
            self._db = connect(self.target)
        try:
            self._db.executemany(_INSERT, rows, chunk=_SLICE, pause=_PAUSE)
        except Exception:
            self.close()  # a broken connection is opened again with the next batch
            raise

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            with contextlib.suppress(Exception):
                db.close()


class UsageRecorder:
    def __init__(
        self,
        sink: Sink,
        pricing: Pricing,
        *,
        deployments: dict[str, tuple[str, str]],
        capacity: int = 10_000,
        on_cost: Callable[[list[tuple[str, float, float]]], None] | None = None,
    ) -> None:
        self.sink = sink
        self.pricing = pricing
        self.deployments = deployments
        """deployment name -> (provider key, upstream model), for pricing."""
        self.capacity = capacity
        self.on_cost = on_cost
        """Called in the pricing thread with [(spend counter, window end, cost)] per batch."""
        self.queued = 0
        self.dropped_full = 0
        self.dropped_failed = 0
        self.written = 0
        self._events: collections.deque[UsageEvent] = collections.deque()
        self._rows: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wake_pricer = threading.Event()
        self._wake_writer = threading.Event()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._summary: dict[tuple[float, str, str], list[float]] = {}
        self._summary_lock = threading.Lock()
        self._last_warning = 0.0

    # -- the request path ----------------------------------------------------------------------------

    def record(self, event: UsageEvent) -> None:
        if self._stopping or len(self._events) + len(self._rows) >= self.capacity:
            self.dropped_full += 1
            return
        self._events.append(event)
        self.queued += 1
        if not self._threads:
            self._start()
        if len(self._events) >= _WAKE_AT:
            self._wake_pricer.set()

    # -- threads ----------------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            for target, name in ((self._price_loop, "pricer"), (self._write_loop, "writer")):
                thread = threading.Thread(
                    target=_in_background, args=(target,), name=f"llm-factory-usage-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _price_loop(self) -> None:
        while True:
            self._wake_pricer.wait(_INTERVAL)
            self._wake_pricer.clear()
            if not self._events:
                if self._stopping:
                    self._wake_writer.set()
                    return
                continue
            while self._events:
                self._price_slice()
                if self._events:
                    time.sleep(_PAUSE)
            self._wake_writer.set()

    def _price_slice(self) -> None:
        costs: list[tuple[str, float, float]] = []
        for _ in range(min(_SLICE, len(self._events))):
            event = self._events.popleft()
            row, cost = self._row(event)
            if cost and event.spend_counter is not None:
                costs.append((*event.spend_counter, cost))
            self._rows.append(row)
        if costs and self.on_cost is not None:
            try:
                self.on_cost(costs)
            except Exception:  # the loop may be gone at shutdown
                log.debug("could not report costs", exc_info=True)

    def _row(self, e: UsageEvent) -> tuple[tuple[Any, ...], float | None]:
        provider, upstream = self.deployments.get(e.deployment or "", (None, None))
        t = e.tokens
        cost = None
        if t is not None:
            try:
                cost = self.pricing.cost(
                    t, deployment=e.deployment, model=e.model, provider=provider, upstream_model=upstream
                )
            except Exception:
                log.debug("pricing failed", exc_info=True)
        self._summarise(e, cost)
        row = (
            e.ts,
            e.key_id,
            e.key_name,
            e.endpoint,
            e.model,
            e.deployment,
            provider,
            int(e.stream),
            e.status,
            round(e.latency_ms, 3),
            t.prompt if t else None,
            t.completion if t else None,
            t.cache_read if t else None,
            t.cache_write if t else None,
            t.reasoning if t else None,
            int(e.estimated),
            cost,
        )
        return row, cost

    def _write_loop(self) -> None:
        try:
            while True:
                self._wake_writer.wait(0.5)
                self._wake_writer.clear()
                while self._rows:
                    batch = [self._rows.popleft() for _ in range(min(_BATCH, len(self._rows)))]
                    try:
                        self.sink.write(batch)
                        self.written += len(batch)
                    except Exception as exc:
                        self.dropped_failed += len(batch)
                        now = time.monotonic()
                        if now - self._last_warning > 60:
                            self._last_warning = now
                            log.warning("usage records dropped: the usage database failed (%s)", exc)
                if self._stopping and not self._events and not self._threads[0].is_alive():
                    return
        finally:
            try:
                self.sink.close()
            except Exception:
                log.debug("closing the usage sink failed", exc_info=True)

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (within ``timeout``) and stop the threads."""
        self._stopping = True
        self._wake_pricer.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            self._wake_writer.set()
        left = len(self._events) + len(self._rows)
        if left and any(t.is_alive() for t in self._threads):
            log.warning("%d usage record(s) not written at shutdown (the usage database is too slow)", left)
        if not self._threads:
            self.sink.close()

    # -- the status page's summary ------------------------------------------------------------------

    def _summarise(self, e: UsageEvent, cost: float | None) -> None:
        bucket = (e.ts // _SUMMARY_BUCKET + 1) * _SUMMARY_BUCKET  # each point covers the minute ending at it
        key = (bucket, e.key_name, e.model or "-")
        t = e.tokens
        with self._summary_lock:
            values = self._summary.get(key)
            if values is None:
                values = self._summary[key] = [0, 0, 0, 0.0, 0]
                horizon = time.time() - _SUMMARY_WINDOW - _SUMMARY_BUCKET
                for old in [k for k in self._summary if k[0] < horizon]:
                    del self._summary[old]
            values[0] += 1
            if t is not None:
                values[1] += t.prompt
                values[2] += t.completion
            if cost is not None:
                values[3] += cost
                values[4] += 1

    def summary(self, since: float | None) -> dict[str, Any]:
        """Requests, tokens and cost per minute, per (key label, model), over the last hour."""
        now = time.time()
        start = max(since or 0.0, now - _SUMMARY_WINDOW)
        first = (start // _SUMMARY_BUCKET + 1) * _SUMMARY_BUCKET
        last = (now // _SUMMARY_BUCKET + 1) * _SUMMARY_BUCKET
        times = []
        t = first
        while t <= last:
            times.append(t)
            t += _SUMMARY_BUCKET
        index = {v: i for i, v in enumerate(times)}
        series: dict[tuple[str, str], dict[str, list[Any]]] = {}
        with self._summary_lock:
            items = list(self._summary.items())
        for (bucket, key, model), (requests, prompt, completion, cost, priced) in items:
            i = index.get(bucket)
            if i is None:
                continue
            s = series.get((key, model))
            if s is None:
                n = len(times)
                s = series[(key, model)] = {
                    "requests": [0] * n,
                    "prompt_tokens": [0] * n,
                    "completion_tokens": [0] * n,
                    "cost": [None] * n,
                }
            s["requests"][i] = int(requests)
            s["prompt_tokens"][i] = int(prompt)
            s["completion_tokens"][i] = int(completion)
            s["cost"][i] = cost if priced else None
        return {
            "interval": _SUMMARY_BUCKET,
            "currency": "USD",
            "t": times,
            "series": [{"key": k, "model": m, **v} for (k, m), v in sorted(series.items())],
        }


def _in_background(target: Callable[[], None]) -> None:
    """Run ``target`` on this thread at a lower CPU priority than the event loop's thread."""
    lower_priority()
    target()


def lower_priority(niceness: int = _NICENESS) -> bool:
    """Lower the calling thread's CPU priority; True when it was lowered. Only on Linux, where a
    thread id names one thread (elsewhere ``setpriority`` would lower the whole process)."""
    if sys.platform != "linux":
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError:  # a sandbox without the system call: the default priority does no harm
        return False
    return True
