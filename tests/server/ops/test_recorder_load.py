"""The usage recorder never slows nor fails requests: a database that sleeps or raises only
delays or drops records, counted in /metrics; records are flushed at shutdown."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from llm_factory_server.ops._prices import Pricing, TokenCounts
from llm_factory_server.ops._recorder import UsageEvent, UsageRecorder

from ..conftest import Serve
from ..helpers import Upstream, make_factory


class SlowSink:
    def __init__(self, delay: float) -> None:
        self.delay, self.rows, self.closed = delay, [], False

    def write(self, rows: list[Any]) -> None:
        time.sleep(self.delay)
        self.rows.extend(rows)

    def close(self) -> None:
        self.closed = True


class BrokenSink(SlowSink):
    def write(self, rows: list[Any]) -> None:
        raise OSError("database is down")


def event(**extra: Any) -> UsageEvent:
    fields: dict[str, Any] = dict(
        key_id="k",
        key_name="team",
        endpoint="chat",
        model="gpt-4o",
        deployment=None,
        stream=False,
        status=200,
        latency_ms=1.0,
        tokens=TokenCounts(10, 5),
    )
    return UsageEvent(**{**fields, **extra})


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    sink = SlowSink(0.5)
    recorder = UsageRecorder(sink, Pricing({}), deployments={}, capacity=10)
    started = time.perf_counter()
    for _ in range(1000):
        recorder.record(event())
    assert time.perf_counter() - started < 0.5  # never waits on the sink
    assert recorder.dropped_full >= 900
    recorder.close(timeout=5)
    assert len(sink.rows) + recorder.dropped_full == 1000 and sink.closed


def test_records_are_flushed_at_shutdown() -> None:
    sink = SlowSink(0.05)
    recorder = UsageRecorder(sink, Pricing({}), deployments={})
    for _ in range(50):
        recorder.record(event())
    recorder.close(timeout=5)
    assert len(sink.rows) == 50 and recorder.written == 50


def _swap_sink(server: Any, sink: Any) -> None:
    server.server.config.app.state.llm_factory_gateway.ops.recorder.sink = sink


@pytest.mark.parametrize("sink", [SlowSink(1.0), BrokenSink(0)], ids=["slow", "down"])
def test_requests_neither_slow_down_nor_fail_when_the_database_does(
    upstream: Upstream, serve: Serve, sink: SlowSink
) -> None:
    server = serve(make_factory(upstream), usage_queue=20)
    _swap_sink(server, sink)

    async def load() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            replies = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(200)))
        return [r.status_code for r in replies]

    started = time.monotonic()
    statuses = asyncio.run(load())
    assert statuses == [200] * 200
    assert time.monotonic() - started < 5  # a sleeping database (1 s a batch) adds nothing per request
    metrics = httpx.get(f"{server.url}/metrics").text
    reason = "write_failed" if isinstance(sink, BrokenSink) else "queue_full"
    line = next(
        x for x in metrics.splitlines() if x.startswith(f'llm_factory_usage_records_dropped_total{{reason="{reason}"}}')
    )
    assert float(line.split()[-1]) > 0


def test_the_recorder_runs_off_the_event_loop_thread() -> None:
    seen: list[str] = []

    class Sink(SlowSink):
        def write(self, rows: list[Any]) -> None:
            seen.append(threading.current_thread().name)

    recorder = UsageRecorder(Sink(0), Pricing({}), deployments={})
    recorder.record(event())
    recorder.close()
    assert seen == ["llm-factory-usage-writer"]


def test_the_pricer_works_in_slices_with_a_pause_between(monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch of several hundred events priced in one go held the event loop off the GIL (and, on
    # one core, the CPU) for milliseconds: the gateway's latency tail. Slices with pauses bound it.
    from llm_factory_server.ops import _recorder
    from llm_factory_server.ops._prices import Price

    pauses: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(_recorder.time, "sleep", lambda s: (pauses.append(s), real_sleep(s)))
    reports: list[list[tuple[str, float, float]]] = []
    sink = SlowSink(0)
    recorder = UsageRecorder(
        sink,
        Pricing({"gpt-4o": Price(input_per_mtok=1_000_000, output_per_mtok=0)}),
        deployments={},
        on_cost=reports.append,
    )
    with monkeypatch.context() as queue_first:  # all 101 queued before the threads start
        queue_first.setattr(recorder, "_start", lambda: None)
        for _ in range(101):
            recorder.record(event(spend_counter=("s:k", 1.0)))
    recorder._start()
    recorder.close(timeout=5)
    assert len(sink.rows) == 101
    assert sum(len(r) for r in reports) == 101 and all(c == 10.0 for r in reports for _, _, c in r)
    assert max(len(r) for r in reports) == _recorder._SLICE  # one report per slice
    assert pauses.count(_recorder._PAUSE) >= 101 // _recorder._SLICE


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are per thread on Linux only")
def test_the_recorder_threads_run_at_a_lower_priority_than_the_event_loop() -> None:
    # On one core a recorder thread woken mid-request took the CPU from it: the p99 at c=1.
    seen: list[int] = []

    class Sink(SlowSink):
        def write(self, rows: list[Any]) -> None:
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if mine >= 19:
        pytest.skip("the tests already run at the lowest CPU priority: there is none lower to see")
    recorder = UsageRecorder(Sink(0), Pricing({}), deployments={})
    recorder.record(event())
    recorder.close()
    assert seen == [min(mine + 10, 19)]  # lowering one's own priority needs no privilege
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # only the threads


def test_priorities_are_left_alone_where_a_thread_id_is_not_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_factory_server.ops import _recorder

    calls: list[Any] = []
    monkeypatch.setattr(_recorder.os, "setpriority", lambda *a: calls.append(a), raising=False)
    monkeypatch.setattr(_recorder.sys, "platform", "darwin")
    assert _recorder.lower_priority() is False and calls == []  # elsewhere it would lower the process
    monkeypatch.setattr(_recorder.sys, "platform", "linux")

    def refused(*args: Any) -> None:
        raise PermissionError("seccomp")

    monkeypatch.setattr(_recorder.os, "setpriority", refused, raising=False)
    assert _recorder.lower_priority() is False
