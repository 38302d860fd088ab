"""Managed client keys: created with a name, allowed models, RPM / TPM limits, a budget per day or
month and an expiry; stored hashed, shown once, revocable at once.

A key is ``lfk-`` and 43 URL-safe characters from ``secrets`` (256 random bits), so a plain
SHA-256 is enough to store it: nothing is left to brute-force that a slow hash would protect
(slow hashes defend low-entropy passwords). The database keeps the hash and a short hint
(``lfk-…abcd``) for people to tell keys apart; the key itself is printed once and never stored.

The gateway keeps every live key in memory, by hash (one SHA-256 and one dict lookup per request),
and re-reads the table every ``refresh`` seconds, so a key created or revoked by another process
or by the CLI works or stops within that time; one revoked through this process stops at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._db import Database, connect, is_postgres

__all__ = ["KeyRecord", "KeySpec", "KeyStore", "hash_key", "new_key"]

PREFIX = "lfk-"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


class KeySpec(BaseModel):
    """What a new key may do (the admin API's body, the CLI's options)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    models: list[str] | None = None
    """Model names the key may call; None: every model."""
    rpm: int | None = Field(default=None, ge=1)
    """Requests per minute (fixed one-minute windows)."""
    tpm: int | None = Field(default=None, ge=1)
    """Tokens (prompt + completion) per minute; a request is refused once the minute's tokens reach it."""
    budget: float | None = Field(default=None, gt=0)
    """USD per ``budget_period``."""
    budget_period: Literal["day", "month"] = "month"
    expires_at: float | None = None
    """Unix time after which the key stops working."""

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("a key's name must be printable text")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any(not m.strip() for m in value)):
            raise ValueError("list at least one model name, or leave models out for every model")
        return value


class KeyRecord(KeySpec):
    """A stored key: its spec, id, hint and dates (never the key)."""

    id: str
    hint: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > time.time())

    def public(self) -> dict[str, Any]:
        data = self.model_dump()
        data["status"] = "revoked" if self.revoked_at else ("expired" if not self.active else "active")
        return data


_COLUMNS = "id, name, hash, hint, models, rpm, tpm, budget, budget_period, expires_at, created_at, revoked_at"


def _record(row: tuple[Any, ...]) -> tuple[str, KeyRecord]:
    id_, name, digest, hint, models, rpm, tpm, budget, period, expires, created, revoked = row
    return digest, KeyRecord(
        id=id_,
        name=name,
        hint=hint,
        models=json.loads(models) if models else None,
        rpm=rpm,
        tpm=tpm,
        budget=budget,
        budget_period=period or "month",
        expires_at=expires,
        created_at=created,
        revoked_at=revoked,
    )


class KeyStore:
    """The ``client_keys`` table and this process's in-memory view of it."""

    def __init__(self, path: str | None, *, refresh: float = 1.0) -> None:
        self.path = path
        self.refresh = refresh
        self._conn: Database | None = None
        self._lock = threading.Lock()
        self.by_hash: dict[bytes, KeyRecord] = {}
        """Live keys by SHA-256 digest: what the request path reads."""
        self.loaded_at = 0.0

    @property
    def remote(self) -> bool:
        """PostgreSQL: reads go over the network (never from the event loop)."""
        return is_postgres(self.path)

    def _run(self, sql: str, args: tuple[Any, ...] = (), *, rows: bool = True) -> list[Any]:
        """One statement (and its rows); a failed connection is dropped and opened again next time."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = connect(self.path)
                cursor = self._conn.execute(sql, args)
                return list(cursor.fetchall()) if rows else []
            except Exception:
                if self._conn is not None:
                    conn, self._conn = self._conn, None
                    with contextlib.suppress(Exception):
                        conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- synchronous (worker thread or CLI) ---------------------------------------------------------

    def create(self, spec: KeySpec) -> tuple[str, KeyRecord]:
        """A new key and its record; the key is returned once and never stored."""
        if spec.expires_at is not None and spec.expires_at <= time.time():
            raise ValueError("expires_at is in the past: give a later time (Unix seconds), or leave it out")
        key = new_key()
        record = KeyRecord(
            **spec.model_dump(), id="key_" + secrets.token_hex(8), hint=f"{key[:4]}…{key[-4:]}", created_at=time.time()
        )
        values = (
            record.id,
            record.name,
            hash_key(key.encode()),
            record.hint,
            json.dumps(record.models) if record.models is not None else None,
            record.rpm,
            record.tpm,
            record.budget,
            record.budget_period,
            record.expires_at,
            record.created_at,
            None,
        )
        self._run(f"INSERT INTO client_keys ({_COLUMNS}) VALUES ({', '.join('?' * 12)})", values, rows=False)
        self.by_hash[hashlib.sha256(key.encode()).digest()] = record
        return key, record

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke ``key_id`` (at once in this process); None when there is no such key."""
        self._run(
            "UPDATE client_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
            rows=False,
        )
        found = self._run(f"SELECT {_COLUMNS} FROM client_keys WHERE id = ?", (key_id,))
        if not found:
            return None
        digest, record = _record(found[0])
        self.by_hash.pop(bytes.fromhex(digest), None)
        return record

    def all(self) -> list[KeyRecord]:
        return [_record(row)[1] for row in self._run(f"SELECT {_COLUMNS} FROM client_keys ORDER BY created_at")]

    def get(self, key_id: str) -> KeyRecord | None:
        found = self._run(f"SELECT {_COLUMNS} FROM client_keys WHERE id = ?", (key_id,))
        return _record(found[0])[1] if found else None

    def load(self) -> None:
        """Re-read the live keys (a revoked or expired key leaves the map)."""
        rows = self._run(f"SELECT {_COLUMNS} FROM client_keys WHERE revoked_at IS NULL")
        fresh: dict[bytes, KeyRecord] = {}
        for row in rows:
            digest, record = _record(row)
            if record.active:
                fresh[bytes.fromhex(digest)] = record
        self.by_hash = fresh  # one assignment: readers see the old map or the new one
        self.loaded_at = time.monotonic()

    def spend(self, since_by_key: dict[str, float]) -> dict[str, float]:
        """What each key spent since its budget period's start, from the usage records."""
        out = {}
        for key_id, since in since_by_key.items():
            found = self._run("SELECT COALESCE(SUM(cost), 0) FROM usage WHERE key_id = ? AND ts >= ?", (key_id, since))
            out[key_id] = float(found[0][0])
        return out

    # -- the request path ----------------------------------------------------------------------------

    def lookup(self, presented: bytes) -> KeyRecord | None:
        record = self.by_hash.get(hashlib.sha256(presented).digest())
        if record is None:
            return None
        if record.expires_at is not None and record.expires_at <= time.time():
            return None
        return record


def parse_expiry(value: str) -> float:
    """``30d``, ``12h``, ``90m`` from now, or an ISO date/time (UTC unless it says otherwise)."""
    text = value.strip()
    units = {"d": 86400, "h": 3600, "m": 60}
    if text and text[-1] in units and text[:-1].isdigit():
        return time.time() + int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expiry {text[:40]!r}: use 30d, 12h, 90m or an ISO date like 2027-01-31") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
