"""Keys and usage records in PostgreSQL (``server.usage_db: postgresql://...``), on a private
cluster the fixture starts (skipped, saying how to get one, where PostgreSQL is missing)."""

from __future__ import annotations

from typing import Any

import httpx

from llm_factory_server import ServerSettings, create_app

from ..helpers import Upstream, make_factory, serving
from .test_keys_limits import ADMIN, admin, chat, eventually, new_key


def pg_rows(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute("SELECT * FROM usage ORDER BY id").fetchall())


def test_keys_records_budgets_and_usage_live_in_postgres(upstream: Upstream, postgres_url: str) -> None:
    def app() -> Any:
        return create_app(make_factory(upstream), settings=ServerSettings(admin_key=ADMIN, usage_db=postgres_url))

    with serving(app()) as first:
        key = new_key(first, name="pg-team", budget=0.000001, budget_period="month")
        assert chat(first, key["key"]).status_code == 200
        eventually(lambda: len(pg_rows(postgres_url)) == 1)
        (row,) = pg_rows(postgres_url)
        assert row["key_name"] == "pg-team" and row["prompt_tokens"] > 0 and row["cost"] > 0
        by_day = admin(first, "GET", "/usage", params={"group_by": "day"}).json()["data"]
        assert len(by_day) == 1 and by_day[0]["requests"] == 1 and by_day[0]["cost"] > 0
        by_key = admin(first, "GET", "/usage", params={"group_by": "key"}).json()["data"]
        assert by_key[0]["name"] == "pg-team"
    with serving(app()) as second:  # another process (or host): the key and its spend come from PostgreSQL
        refused = chat(second, key["key"])
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
        assert admin(second, "DELETE", f"/keys/{key['id']}").json()["status"] == "revoked"
        assert chat(second, key["key"]).status_code == 401


def test_postgres_down_fails_no_request(upstream: Upstream, postgres_url: str) -> None:
    from tests.redis_server import free_port

    dead = f"postgresql://llm@127.0.0.1:{free_port()}/nothing"
    app = create_app(make_factory(upstream), settings=ServerSettings(usage_db=dead))
    with serving(app) as server:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        assert all(httpx.post(f"{server.url}/v1/chat/completions", json=body).status_code == 200 for _ in range(20))

        def dropped() -> float:
            metrics = httpx.get(f"{server.url}/metrics").text
            line = next(x for x in metrics.splitlines() if 'dropped_total{reason="write_failed"}' in x)
            return float(line.split()[-1])

        eventually(lambda: dropped() == 20)
