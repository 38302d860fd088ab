"""The embedded SQLite database of client keys and usage records (no setup).

Every call runs in a worker thread, never on the event loop. WAL mode lets several gateway
processes on one host (``--workers N``) share the file; a busy timeout rides out their writes.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["ENV", "connect", "default_path"]

ENV = "LLM_FACTORY_USAGE_DB"

SCHEMA = """
CREATE TABLE IF NOT EXISTS client_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    models TEXT,
    rpm INTEGER,
    tpm INTEGER,
    budget REAL,
    budget_period TEXT,
    expires_at REAL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    key_id TEXT,
    key_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    deployment TEXT,
    provider TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cached_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    estimated INTEGER NOT NULL DEFAULT 0,
    cost REAL
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE INDEX IF NOT EXISTS usage_key_ts ON usage (key_id, ts);
"""


def default_path() -> Path:
    """``$LLM_FACTORY_USAGE_DB``, else ``$XDG_STATE_HOME/llm-factory/usage.sqlite3`` (``~/.local/state/...``)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "llm-factory" / "usage.sqlite3"


def connect(path: str | os.PathLike[str] | None) -> sqlite3.Connection:
    """A connection for one worker thread (``check_same_thread`` off: callers serialise use)."""
    target = Path(path) if path else default_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(target, timeout=10.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn
