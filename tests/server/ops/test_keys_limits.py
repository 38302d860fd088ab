"""Managed client keys in one gateway process: created through the admin API, hashed, limited
(RPM, TPM), budgeted, restricted to models, revocable; usage and cost recorded in SQLite."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llm_factory_server.ops._db import default_path

from ..conftest import Serve
from ..helpers import Upstream, client, deployment, make_factory

ADMIN = "admin-key-0123456789abcdef"


def admin(server: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, f"{server.url}/admin{path}", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10, **kwargs
    )


def new_key(server: Any, **spec: Any) -> dict[str, Any]:
    reply = admin(server, "POST", "/keys", json={"name": "team-a", **spec})
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def chat(server: Any, key: str, model: str = "gpt-4o", **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra},
        timeout=10,
    )


def rows(path: Path | None = None) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path or default_path())
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM usage ORDER BY id").fetchall()
    finally:
        conn.close()


def eventually(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not within {within}s"
        time.sleep(0.02)


@pytest.fixture
def gateway(upstream: Upstream, serve: Serve) -> Any:
    factory = make_factory(upstream, deployment("a"), deployment("b", model_name="other"))
    return serve(factory, admin_key=ADMIN, api_keys=["static-client-key"])


def test_a_key_is_shown_once_and_stored_hashed(gateway: Any) -> None:
    created = new_key(gateway, rpm=10)
    key = created["key"]
    assert key.startswith("lfk-") and len(key) > 40
    assert chat(gateway, key).status_code == 200
    listed = admin(gateway, "GET", "/keys").json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in admin(gateway, "GET", "/keys").text
    raw = default_path().read_bytes()
    assert key.encode() not in raw  # only its SHA-256 is stored
    import hashlib

    conn = sqlite3.connect(default_path())
    (stored,) = conn.execute("SELECT hash FROM client_keys").fetchone()
    conn.close()
    assert stored == hashlib.sha256(key.encode()).hexdigest()


def test_static_keys_keep_working_and_the_admin_key_is_no_client_key(gateway: Any) -> None:
    assert chat(gateway, "static-client-key").status_code == 200
    refused = chat(gateway, ADMIN)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert chat(gateway, "lfk-not-a-real-key").status_code == 401
    # and a client key is no admin key
    reply = httpx.get(f"{gateway.url}/admin/keys", headers={"authorization": "Bearer static-client-key"})
    assert reply.status_code == 401


def test_rpm_limit_is_a_429_with_retry_after(gateway: Any) -> None:
    key = new_key(gateway, rpm=3)["key"]
    if time.time() % 60 > 55:  # fixed windows: do not straddle a minute
        time.sleep(61 - time.time() % 60)
    assert [chat(gateway, key).status_code for _ in range(3)] == [200, 200, 200]
    limited = chat(gateway, key)
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "3 requests per minute" in error["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    with pytest.raises(openai.RateLimitError):
        client(gateway, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_tpm_limit_counts_the_tokens_used(gateway: Any) -> None:
    key = new_key(gateway, tpm=5)["key"]
    if time.time() % 60 > 55:
        time.sleep(61 - time.time() % 60)
    assert chat(gateway, key).status_code == 200  # the fake reports more than 5 tokens
    limited = chat(gateway, key)
    assert limited.status_code == 429 and "5 tokens per minute" in limited.json()["error"]["message"]
    assert limited.headers["retry-after"]


def test_a_key_limited_to_models_gets_403_for_others(gateway: Any) -> None:
    key = new_key(gateway, models=["gpt-4o"])["key"]
    assert chat(gateway, key).status_code == 200
    refused = chat(gateway, key, model="other")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed" and "gpt-4o" in refused.json()["error"]["message"]


def test_revoked_and_expired_keys_stop_at_once(gateway: Any) -> None:
    created = new_key(gateway)
    assert chat(gateway, created["key"]).status_code == 200
    assert admin(gateway, "DELETE", f"/keys/{created['id']}").json()["status"] == "revoked"
    assert chat(gateway, created["key"]).status_code == 401
    expiring = new_key(gateway, expires_at=time.time() + 1)
    assert chat(gateway, expiring["key"]).status_code == 200
    time.sleep(1.1)
    assert chat(gateway, expiring["key"]).status_code == 401
    assert admin(gateway, "DELETE", "/keys/key_nope").status_code == 404


def test_budget_is_a_429_insufficient_quota_naming_budget_and_reset(gateway: Any, upstream: Upstream) -> None:
    # gpt-4o at genai-prices' table: each reply costs a few micro-dollars; a tiny budget runs out
    key = new_key(gateway, budget=0.000001, budget_period="day")
    assert chat(gateway, key["key"]).status_code == 200
    eventually(lambda: chat(gateway, key["key"]).status_code == 429)
    refused = chat(gateway, key["key"])
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota" and "$1e-06 per day" in error["message"]
    assert "resets at" in error["message"] and refused.headers["x-should-retry"] == "false"
    assert int(refused.headers["retry-after"]) <= 86400
    with pytest.raises(openai.RateLimitError):  # no silent retries by the SDK (x-should-retry)
        openai.OpenAI(api_key=key["key"], base_url=f"{gateway.url}/v1").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    current = admin(gateway, "GET", f"/keys/{key['id']}").json()
    assert current["spend"] > 0.000001 and current["budget_resets_at"].endswith("T00:00:00Z")


def test_usage_is_recorded_with_cost_and_summed_by_key_model_day(gateway: Any) -> None:
    key = new_key(gateway, name="team-b")
    assert chat(gateway, key["key"]).status_code == 200
    assert chat(gateway, "static-client-key").status_code == 200
    eventually(lambda: len(rows()) == 2)
    first, second = rows()
    assert first["key_id"] == key["id"] and first["key_name"] == "team-b"
    assert second["key_id"] is None and second["key_name"] == "api_keys[0]"
    assert first["model"] == "gpt-4o" and first["deployment"] == "a-gpt-4o" and first["provider"] == "openai"
    assert first["status"] == 200 and first["prompt_tokens"] > 0 and first["completion_tokens"] > 0
    assert first["cost"] > 0 and first["latency_ms"] > 0
    by_key = admin(gateway, "GET", "/usage", params={"group_by": "key"}).json()["data"]
    assert {r["name"]: r["requests"] for r in by_key} == {"team-b": 1, "api_keys[0]": 1}
    by_model = admin(gateway, "GET", "/usage", params={"group_by": "model"}).json()["data"]
    assert by_model[0]["model"] == "gpt-4o" and by_model[0]["requests"] == 2 and by_model[0]["cost"] > 0
    by_day = admin(gateway, "GET", "/usage", params={"group_by": "day"}).json()["data"]
    assert len(by_day) == 1 and by_day[0]["requests"] == 2
    assert admin(gateway, "GET", "/usage", params={"group_by": "nope"}).status_code == 400


def test_a_stream_records_usage_the_client_did_not_ask_for_without_sending_it(gateway: Any) -> None:
    key = new_key(gateway)["key"]
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as reply:
        text = reply.read().decode()
    assert text.endswith("data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert events and all(e.get("usage") is None and e["choices"] for e in events)  # no usage chunk sent
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert row["stream"] == 1 and row["completion_tokens"] > 0 and row["estimated"] == 0


def test_the_admin_api_needs_the_admin_key_and_validates(gateway: Any) -> None:
    assert httpx.get(f"{gateway.url}/admin/keys").status_code == 401
    bad = admin(gateway, "POST", "/keys", json={"name": "x", "rpm": 0})
    assert bad.status_code == 400 and "rpm" in bad.json()["error"]["message"]
    assert admin(gateway, "POST", "/keys", json={"name": "x", "budget_period": "week"}).status_code == 400
    past = admin(gateway, "POST", "/keys", json={"name": "x", "expires_at": time.time() - 10})
    assert past.status_code == 400 and "expires_at is in the past" in past.json()["error"]["message"]
    assert admin(gateway, "GET", "/keys").json()["data"] == []  # nothing was created


def test_without_an_admin_key_the_admin_api_is_off(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    reply = httpx.get(f"{server.url}/admin/keys", headers={"authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 403 and "server.admin_key" in reply.json()["error"]["message"]


def test_the_status_page_gets_usage(gateway: Any) -> None:
    key = new_key(gateway, name="team-c")["key"]
    assert chat(gateway, key).status_code == 200
    eventually(lambda: len(rows()) == 1)
    report = httpx.get(f"{gateway.url}/ui/api/usage", headers={"authorization": "Bearer static-client-key"}).json()
    assert report["enabled"] is True
    (series,) = report["series"]
    assert series["key"] == "team-c" and sum(series["requests"]) == 1 and sum(c or 0 for c in series["cost"]) > 0
