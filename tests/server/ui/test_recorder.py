"""The timeseries recorder: differences of consecutive samples, a bounded ring buffer, ``since``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llm_factory_core import DeploymentStatus
from llm_factory_server.ui import Recorder, create_ui_router


def status(name: str, successes: int = 0, failures: int = 0, **extra: Any) -> DeploymentStatus:
    fields: dict[str, Any] = {
        "name": name,
        "provider": "openai",
        "model_name": "gpt-4o",
        "model": "gpt-4o",
        "api_base": None,
        "api_key": "****0001",
        "state": "healthy",
        "until": None,
        "reason": None,
        "in_flight": 0,
        "successes": successes,
        "failures": failures,
        "last_error": None,
        "avg_latency_ms": None,
        "weight": 1.0,
        "priority": 0,
    }
    fields.update(extra)
    return DeploymentStatus(**fields)


class FakeFactory:
    """What the recorder reads: ``status()``."""

    def __init__(self) -> None:
        self.rows: list[DeploymentStatus] = []

    def status(self) -> list[DeploymentStatus]:
        return list(self.rows)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorder(factory: FakeFactory, clock: Clock, **kwargs: Any) -> Recorder:
    return Recorder(factory, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_points_are_the_differences_of_consecutive_samples() -> None:
    factory, clock = FakeFactory(), Clock()
    rec = recorder(factory, clock)
    factory.rows = [status("a", 10, 2, avg_latency_ms=100.0), status("b", 5, 0)]
    rec.sample()
    assert rec.series()["t"] == []  # the first sample is only the baseline
    clock.now += 5
    factory.rows = [
        status("a", 13, 4, avg_latency_ms=120.5, state="cooldown", in_flight=2),
        status("b", 5, 0),
    ]
    rec.sample()
    series = rec.series()
    assert series["t"] == [1_000_005.0]
    assert series["interval"] == 5.0 and series["window"] == 3600.0
    a, b = series["deployments"]
    assert (a["name"], a["model_name"], a["provider"]) == ("a", "gpt-4o", "openai")
    assert a["requests"] == [5] and a["errors"] == [2]  # 3 successes + 2 failures
    assert a["latency_ms"] == [120.5] and a["in_flight"] == [2] and a["state"] == ["cooldown"]
    assert b["requests"] == [0] and b["errors"] == [0] and b["latency_ms"] == [None]


def test_the_buffer_keeps_one_window() -> None:
    factory, clock = FakeFactory(), Clock()
    rec = recorder(factory, clock, interval=5, window=20)
    for i in range(50):
        factory.rows = [status("a", i)]
        rec.sample()
        clock.now += 5
    assert len(rec) == 5  # window / interval points plus the baseline
    series = rec.series()
    assert len(series["t"]) == 4
    assert series["t"][-1] == 1_000_000.0 + 49 * 5
    assert series["deployments"][0]["requests"] == [1, 1, 1, 1]


def test_since_returns_only_newer_points() -> None:
    factory, clock = FakeFactory(), Clock()
    rec = recorder(factory, clock)
    for i in range(4):
        factory.rows = [status("a", i * 2)]
        rec.sample()
        clock.now += 5.0004  # served times are rounded to the millisecond: since must still match
    full = rec.series()
    assert len(full["t"]) == 3
    newer = rec.series(since=full["t"][0])
    assert newer["t"] == full["t"][1:]
    assert newer["deployments"][0]["requests"] == [2, 2]
    assert rec.series(since=full["t"][-1])["t"] == []


def test_a_deployment_that_appears_later_has_gaps_and_counters_never_go_negative() -> None:
    factory, clock = FakeFactory(), Clock()
    rec = recorder(factory, clock)
    factory.rows = [status("a", 10)]
    rec.sample()
    clock.now += 5
    factory.rows = [status("a", 4), status("b", 3)]  # a's counters went back (another worker's view)
    rec.sample()
    clock.now += 5
    factory.rows = [status("a", 6), status("b", 4, 1)]
    rec.sample()
    a, b = rec.series()["deployments"]
    assert a["requests"] == [0, 2]
    assert b["requests"] == [None, 2] and b["errors"] == [None, 1]


@pytest.mark.parametrize(
    ("interval", "window", "message"),
    [
        (0, 3600, "interval must be a positive number of seconds"),
        (float("nan"), 3600, "interval must be a positive number of seconds"),
        (5, 1, "window must be a number of seconds at least the interval"),
        (5, float("inf"), "window must be a number of seconds at least the interval"),
    ],
)
def test_bad_periods_are_refused_when_the_router_is_made(interval: float, window: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_ui_router(interval=interval, window=window)
    with pytest.raises(ValueError, match=message):
        Recorder(FakeFactory(), interval=interval, window=window)  # type: ignore[arg-type]


def test_run_samples_on_its_timer_until_cancelled() -> None:
    factory = FakeFactory()
    factory.rows = [status("a")]
    rec = Recorder(factory, interval=0.02, window=1)  # type: ignore[arg-type]

    async def main() -> int:
        task = asyncio.create_task(rec.run())
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        taken = rec.samples_taken
        await asyncio.sleep(0.06)
        assert rec.samples_taken == taken  # stopped with its task
        return taken

    assert 3 <= asyncio.run(main()) <= 9
