"""Reading the usage database: totals by key, model or day, and a key's spend in a period."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any, Literal

from ._db import connect

__all__ = ["GROUPS", "period_bounds", "spend_by_key", "usage_totals"]

GROUPS = ("key", "model", "day")


def period_bounds(period: Literal["day", "month"], now: float | None = None) -> tuple[float, float, str]:
    """Start, end (Unix time, UTC) and a label of the budget period holding ``now``."""
    # per minute from a small cache: the request path asks on every budgeted request
    return _bounds(period, int((time.time() if now is None else now) // 60))


@functools.lru_cache(maxsize=64)
def _bounds(period: Literal["day", "month"], minute: int) -> tuple[float, float, str]:
    when = datetime.fromtimestamp(minute * 60, UTC)
    if period == "day":
        start = when.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
        return start.timestamp(), end.timestamp(), start.strftime("%Y-%m-%d")
    start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp(), start.strftime("%Y-%m")


def usage_totals(
    path: str | None,
    group_by: str,
    *,
    since: float | None = None,
    until: float | None = None,
    key_id: str | None = None,
) -> list[dict[str, Any]]:
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}, not {group_by[:20]!r}")
    where = ["ts >= ?", "ts < ?"]
    args: list[Any] = [since or 0.0, until or time.time() + 1]
    if key_id is not None:
        where.append("key_id = ?")
        args.append(key_id)
    db = connect(path)
    group = {"key": "COALESCE(key_id, key_name)", "model": "model", "day": db.day("ts")}[group_by]
    name = "MAX(key_name)" if group_by == "key" else "NULL"
    try:
        rows = db.execute(
            f"SELECT {group}, {name}, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens),"
            " SUM(completion_tokens), SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost),"
            " SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END)"
            f" FROM usage WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1",
            args,
        ).fetchall()
    finally:
        db.close()
    out = []
    for group, name, requests, errors, prompt, completion, cached, write, reasoning, cost, unpriced in rows:
        row: dict[str, Any] = {group_by: group}
        if group_by == "key":
            row["name"] = name
        row.update(
            requests=int(requests),
            errors=int(errors or 0),
            prompt_tokens=int(prompt or 0),
            completion_tokens=int(completion or 0),
            cached_tokens=int(cached or 0),
            cache_write_tokens=int(write or 0),
            reasoning_tokens=int(reasoning or 0),
            cost=round(float(cost or 0.0), 10),  # PostgreSQL's SUMs are Decimals
            unpriced_requests=int(unpriced or 0),
        )
        out.append(row)
    return out


def spend_by_key(path: str | None, since_by_key: dict[str, float]) -> dict[str, float]:
    """What each key spent since its period's start (budgets after a restart)."""
    if not since_by_key:
        return {}
    conn = connect(path)
    try:
        out = {}
        for key_id, since in since_by_key.items():
            (total,) = conn.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM usage WHERE key_id = ? AND ts >= ?", (key_id, since)
            ).fetchone()
            out[key_id] = float(total)
        return out
    finally:
        conn.close()
