"""The database of client keys and usage records: an embedded SQLite file by default (no setup),
or PostgreSQL when ``server.usage_db`` is a ``postgresql://`` URL (``pip install
'llm-factory-server[postgres]'``: psycopg 3), so that gateways on several hosts share keys and
records.

Every call runs in a worker thread, never on the event loop. SQLite runs in WAL mode, so several
gateway processes on one host (``--workers N``) share the file; a busy timeout rides out their
writes. Statements are written once with ``?`` placeholders; ``Database`` adapts them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ENV", "Database", "connect", "default_path", "display"]

ENV = "LLM_FACTORY_USAGE_DB"

_TABLES = """
CREATE TABLE IF NOT EXISTS client_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    models TEXT,
    rpm INTEGER,
    tpm BIGINT,
    budget DOUBLE PRECISION,
    budget_period TEXT,
    expires_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS usage (
    id {id_column},
    ts DOUBLE PRECISION NOT NULL,
    key_id TEXT,
    key_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    deployment TEXT,
    provider TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    cached_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    estimated INTEGER NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE INDEX IF NOT EXISTS usage_key_ts ON usage (key_id, ts);
"""
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def default_path() -> Path:
    """``$LLM_FACTORY_USAGE_DB``, else ``$XDG_STATE_HOME/llm-factory/usage.sqlite3`` (``~/.local/state/...``)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "llm-factory" / "usage.sqlite3"


def is_postgres(target: str | None) -> bool:
    return bool(target) and urlsplit(str(target)).scheme in _POSTGRES_SCHEMES


def display(target: str | None) -> str:
    """Where the database is, for messages: a URL without its password."""
    if not is_postgres(target):
        return str(target or default_path())
    parts = urlsplit(str(target))
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return f"{parts.scheme}://{parts.username + '@' if parts.username else ''}{host}{parts.path}"


class Database:
    """One connection; ``execute`` and ``executemany`` take ``?`` placeholders on both kinds."""

    def __init__(self, target: str | None) -> None:
        self.postgres = is_postgres(target)
        if self.postgres:
            try:
                import psycopg
            except ImportError:
                raise RuntimeError(
                    "server.usage_db is a PostgreSQL URL: install psycopg ('pip install llm-factory-server[postgres]')"
                ) from None
            self.conn: Any = psycopg.connect(str(target), autocommit=True, connect_timeout=5)
            with self.conn.transaction():
                for statement in _TABLES.format(id_column="BIGSERIAL PRIMARY KEY").split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
        else:
            path = Path(target) if target else default_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_TABLES.format(id_column="INTEGER PRIMARY KEY"))
            self.conn = conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._sql(sql), tuple(args))

    def executemany(self, sql: str, rows: list[tuple[Any, ...]], *, chunk: int = 0, pause: float = 0.0) -> None:
        """All rows in one transaction; with ``chunk``, ``chunk`` rows at a time with a ``pause``
        (seconds) between, so a background writer leaves the GIL and the CPU to the event loop."""
        parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)] if chunk > 0 else [rows]
        if self.postgres:
            with self.conn.transaction(), self.conn.cursor() as cursor:
                for n, part in enumerate(parts):
                    if n and pause:
                        time.sleep(pause)
                    cursor.executemany(self._sql(sql), part)
            return
        self.conn.execute("BEGIN")
        try:
            for n, part in enumerate(parts):
                if n and pause:
                    time.sleep(pause)
                self.conn.executemany(sql, part)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def day(self, column: str) -> str:
        """SQL for a Unix-time column's UTC date, ``YYYY-MM-DD``."""
        if self.postgres:
            return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return f"strftime('%Y-%m-%d', {column}, 'unixepoch')"

    def close(self) -> None:
        self.conn.close()


def connect(target: str | None) -> Database:
    return Database(target)
