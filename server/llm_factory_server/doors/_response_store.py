"""Stored Responses for ``previous_response_id``, ``GET`` and ``DELETE``: an embedded SQLite file
by default (no setup), or the fleet's Redis when shared state is configured (every gateway then
sees every response); each response owned by the client key that made it.

SQLite calls run in a worker thread (never on the event loop); one connection per store, in WAL
mode, serialised by a lock (the store is written once per stored response, not per chunk).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import anyio

__all__ = ["RedisResponseStore", "ResponseStore", "default_path", "owner_of"]

RETENTION = 30 * 24 * 3600
"""Seconds a response stays in the shared store (OpenAI keeps stored responses 30 days)."""

ENV = "LLM_FACTORY_RESPONSES_DB"


def default_path() -> Path:
    """``$LLM_FACTORY_RESPONSES_DB``, else ``$XDG_STATE_HOME/llm-factory/responses.sqlite3``
    (``~/.local/state/...``)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "llm-factory" / "responses.sqlite3"


def owner_of(key: bytes | None) -> str:
    """Who a response belongs to: a hash of the client key (never the key), '' on an open gateway."""
    return hashlib.sha256(key).hexdigest()[:32] if key else ""


class ResponseStore:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                "created_at INTEGER NOT NULL, response TEXT NOT NULL, items TEXT NOT NULL)"
            )
            self._db = db
        return self._db

    def _run(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connect().execute(sql, args).fetchall()

    async def put(self, response: dict[str, Any], items: list[dict[str, Any]], owner: str) -> None:
        """Keep ``response`` and the conversation up to it (``items``: input then output)."""
        args = (response["id"], owner, int(time.time()), json.dumps(response), json.dumps(items))
        await anyio.to_thread.run_sync(self._run, "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", args)

    async def get(self, response_id: str, owner: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        rows = await anyio.to_thread.run_sync(
            self._run, "SELECT response, items FROM responses WHERE id = ? AND owner = ?", (response_id, owner)
        )
        if not rows:
            return None
        return json.loads(rows[0][0]), json.loads(rows[0][1])

    async def delete(self, response_id: str, owner: str) -> bool:
        def run() -> bool:
            with self._lock:
                cursor = self._connect().execute(
                    "DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner)
                )
                return cursor.rowcount > 0

        return await anyio.to_thread.run_sync(run)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RedisResponseStore:
    """The same store in Redis (``state: redis://...``): one hash per response, expiring after
    ``RETENTION``, under the fleet's key prefix. A connection per operation (a stored response is
    read or written once per Responses call, not per chunk), so nothing outlives its event loop."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix + "resp:"

    def _client(self) -> Any:
        import redis.asyncio as redis

        return redis.Redis.from_url(self.url, socket_timeout=5.0, single_connection_client=True)

    async def put(self, response: dict[str, Any], items: list[dict[str, Any]], owner: str) -> None:
        key = self.prefix + str(response["id"])
        fields = {"owner": owner, "response": json.dumps(response), "items": json.dumps(items)}
        async with self._client() as client, client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, RETENTION)
            await pipe.execute()

    async def get(self, response_id: str, owner: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        async with self._client() as client:
            row = await client.hgetall(self.prefix + response_id)
        if not row or row.get(b"owner", b"").decode() != owner:
            return None
        return json.loads(row[b"response"]), json.loads(row[b"items"])

    async def delete(self, response_id: str, owner: str) -> bool:
        if await self.get(response_id, owner) is None:
            return False
        async with self._client() as client:
            return bool(await client.delete(self.prefix + response_id))

    def close(self) -> None:
        pass
