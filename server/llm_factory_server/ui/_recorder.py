"""Per-deployment samples over time for the status page's charts, in a bounded ring buffer.

A background task reads ``factory.status()`` (the counters the gateway keeps anyway) every
``interval`` seconds; nothing is added to the chat path. Each sample holds the cumulative
counters, so the charts show what happened between two samples: requests and errors are the
differences of consecutive samples, latency is the deployment's moving average at sample time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_factory_core import LLMFactory

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_WINDOW", "Recorder", "check_period"]

log = logging.getLogger("llm_factory_server.ui")

DEFAULT_INTERVAL = 5.0
DEFAULT_WINDOW = 3600.0


@dataclass(frozen=True, slots=True)
class _Point:
    successes: int
    failures: int
    in_flight: int
    latency_ms: float | None
    state: str


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float
    points: dict[str, _Point]


def check_period(interval: float, window: float) -> None:
    if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
    if not (isinstance(window, int | float) and math.isfinite(window) and window >= interval):
        raise ValueError(f"window must be a number of seconds at least the interval ({interval}), not {window!r}")


class Recorder:
    """One sample per ``interval`` seconds for the last ``window`` seconds (plus one, the baseline
    of the first difference): ``window / interval`` samples at most, whatever the traffic."""

    def __init__(
        self,
        factory: LLMFactory,
        *,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_period(interval, window)
        self.factory = factory
        self.interval = interval
        self.window = window
        self._clock = clock
        self._samples: deque[_Sample] = deque(maxlen=int(window // interval) + 1)
        self._info: dict[str, dict[str, str]] = {}
        self.samples_taken = 0

    def __len__(self) -> int:
        return len(self._samples)

    def sample(self) -> None:
        """Record the factory's counters now."""
        points: dict[str, _Point] = {}
        for s in self.factory.status():
            points[s.name] = _Point(s.successes, s.failures, s.in_flight, s.avg_latency_ms, s.state)
            if s.name not in self._info:
                self._info[s.name] = {"name": s.name, "model_name": s.model_name, "provider": s.provider}
        # Rounded as served, so the page's ``since`` (a served time) matches exactly.
        self._samples.append(_Sample(round(self._clock(), 3), points))
        self.samples_taken += 1

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled; a failing sample is logged, not fatal
        (the page must not take the gateway down, nor stop recording after one bad read)."""
        while True:
            try:
                self.sample()
            except Exception:  # pragma: no cover - factory.status() does not raise today
                log.exception("status page: could not sample the deployments")
            await asyncio.sleep(self.interval)

    def series(self, since: float | None = None) -> dict[str, Any]:
        """Columnar series for the charts (uPlot's shape: one time axis, one array per series),
        each point covering the interval that ended at its time. ``since``: only points after it
        (the page polls for what is new)."""
        samples = list(self._samples)
        t: list[float] = []
        columns: dict[str, dict[str, list[Any]]] = {
            name: {"requests": [], "errors": [], "latency_ms": [], "in_flight": [], "state": []} for name in self._info
        }
        for previous, current in itertools.pairwise(samples):
            if since is not None and current.t <= since:
                continue
            t.append(current.t)
            for name, column in columns.items():
                now, before = current.points.get(name), previous.points.get(name)
                if now is None:
                    for values in column.values():
                        values.append(None)
                    continue
                if before is None:
                    requests = errors = None
                else:
                    # max(0, ...): counters shared with other workers (a shared store) never make
                    # a negative bar.
                    errors = max(0, now.failures - before.failures)
                    requests = max(0, now.successes - before.successes) + errors
                column["requests"].append(requests)
                column["errors"].append(errors)
                column["latency_ms"].append(None if now.latency_ms is None else round(now.latency_ms, 3))
                column["in_flight"].append(now.in_flight)
                column["state"].append(now.state)
        return {
            "interval": self.interval,
            "window": self.window,
            "t": t,
            "deployments": [{**self._info[name], **column} for name, column in columns.items()],
        }
