"""The profiles of issue 15 that a run adds to the load table: realistic streams, throughput under
p99 latency bounds, and ``--workers`` scaling. ``run.py`` calls these; ``report.py`` renders them.

- Realistic streams (``streams.py``): first token after 20 ms, 20 or 200 chunks 20 ms apart, up to
  2,048 concurrent streams (one connection each: the fd limit must allow twice that, see
  ``fd_limit_note``), per target in the same run, gateway CPU µs per streamed chunk.
- p99 bounds: non-streaming closed-loop load at rising concurrency; for each bound (1 / 5 / 10 ms)
  the highest req/s whose p99 stayed within it.
- Workers: llm-factory with one worker and with ``--workers N`` (N = the machine's cores), both
  unpinned, non-streaming at concurrency 64; the ratio. On a machine with few cores the load
  driver and the upstream compete with the workers for the same cores: the note says so.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Any

import gateways
import loadgen
import streams
from fake_upstream import run as run_loop

__all__ = ["P99_BOUNDS_MS", "fd_limit_note", "p99_bounds", "p99_sweep", "realistic", "workers_scaling"]

P99_BOUNDS_MS = (1.0, 5.0, 10.0)


def fd_limit_note(levels: tuple[int, ...]) -> tuple[tuple[int, ...], str | None]:
    """The levels this process can open (two sockets per stream here: driver and gateway side
    live in different processes, but the driver holds one per stream plus headroom)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(levels, default=0) + 256
    if soft < want and hard >= want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    kept = tuple(level for level in levels if level + 256 <= soft)
    if kept != levels:
        return kept, f"realistic streams capped at {max(kept, default=0)} concurrent: open-files limit {soft}"
    return kept, None


def realistic(
    gw: gateways.Gateway,
    levels: tuple[int, ...],
    lengths: tuple[tuple[int, float], ...],
    warmup: float,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Every level with the first length; the other lengths, and llm-factory's translated path, at
    ``mid`` (64 when measured), where the marginal CPU per chunk is computed from the lengths; and
    512 streams of the first length all starting at once (``streams.measure``'s ``burst``)."""
    cells = []
    mid = 64 if 64 in levels else (levels[0] if levels else 0)
    paths = ("pass-through", "translated") if gw.name == "llm-factory" else ("pass-through",)
    for path in paths:
        for chunks, duration in lengths:
            for level in levels if (chunks, path) == (lengths[0][0], "pass-through") else (mid,):
                log(f"  {gw.name}: realistic streams, {chunks} chunks, {level} concurrent, {path}")
                cells.append(streams.measure(gw, level, chunks, duration, warmup, path))
    if 512 in levels:  # the same load arriving all at once, round after round: reported beside it
        chunks, duration = lengths[0]
        log(f"  {gw.name}: realistic streams, {chunks} chunks, 512 concurrent, all starting at once")
        cells.append(streams.measure(gw, 512, chunks, duration, warmup, burst=True))
    return cells


def p99_sweep(
    gw: gateways.Gateway, levels: tuple[int, ...], duration: float, warmup: float, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    out = []
    target = loadgen.Target("127.0.0.1", gw.port, gw.path)
    for level in levels:
        log(f"  {gw.name}: p99 sweep at concurrency {level}")
        outcome = run_loop(
            loadgen.drive(target, gateways.CHAT_BODY, concurrency=level, duration=duration, warmup=warmup, stream=False)
        )
        summary = outcome.summary()
        out.append(
            {
                "target": gw.name,
                "concurrency": level,
                "rps": summary["rps"],
                "p99_ms": summary["p99_ms"],
                "errors": summary["errors"],
            }
        )
    return out


def p99_bounds(sweep: list[dict[str, Any]], target: str) -> dict[float, float | None]:
    """Highest req/s of ``target`` whose p99 stayed within each bound (None: not even at c=1)."""
    cells = [c for c in sweep if c["target"] == target and not c["errors"]]
    return {b: max((c["rps"] for c in cells if c["p99_ms"] <= b), default=None) for b in P99_BOUNDS_MS}


def workers_scaling(
    workdir: Any, upstream: int, duration: float, warmup: float, log: Callable[[str], None]
) -> dict[str, Any]:
    cores = os.cpu_count() or 1  # the machine's, not this process's (pinned to the load core)
    everything = set(range(cores))
    result: dict[str, Any] = {"cores": cores}
    for workers in sorted({1, cores}):
        log(f"llm-factory: --workers {workers} on all {cores} cores")
        gw = gateways.start_ours(workdir, everything, upstream, workers)
        try:
            target = loadgen.Target("127.0.0.1", gw.port, gw.path)
            outcome = run_loop(
                loadgen.drive(
                    target, gateways.CHAT_BODY, concurrency=64, duration=duration, warmup=warmup, stream=False
                )
            )
            result[f"rps_{workers}"] = outcome.summary()["rps"]
        finally:
            assert gw.proc is not None
            gw.proc.stop()
    one, many = result.get("rps_1"), result.get(f"rps_{cores}")
    result["ratio"] = many / one if one and many and cores > 1 else None
    result["note"] = (
        f"--workers {cores} vs 1 on {cores} cores shared with the load driver and the upstream: "
        "a lower bound of the scaling on dedicated cores"
    )
    return result
