"""The usage database's batch insert: one transaction, written in chunks with pauses between."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llm_factory_server.ops import _db
from llm_factory_server.ops._db import Database


def test_executemany_in_chunks_writes_every_row_with_a_pause_between_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(_db.time, "sleep", pauses.append)
    db = Database(str(tmp_path / "usage.sqlite3"))
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO t (n) VALUES (?)", [(i,) for i in range(10)], chunk=4, pause=0.001)
    assert [n for (n,) in db.execute("SELECT n FROM t ORDER BY n")] == list(range(10))
    assert pauses == [0.001, 0.001]  # three chunks: 4 + 4 + 2


def test_a_failing_chunk_rolls_back_the_chunks_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_db.time, "sleep", lambda s: None)
    db = Database(str(tmp_path / "usage.sqlite3"))
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    rows = [(i,) for i in range(8)] + [(0,)]  # the last chunk repeats a key
    with pytest.raises(sqlite3.IntegrityError):
        db.executemany("INSERT INTO t (n) VALUES (?)", rows, chunk=4, pause=0.001)
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)  # nothing half-written
    db.executemany("INSERT INTO t (n) VALUES (?)", [(1,)], chunk=4)  # and the connection still works
    assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)
