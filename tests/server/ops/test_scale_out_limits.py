"""Two real gateway processes sharing a real redis-server (and one usage database) enforce one
RPM limit and one budget per key between them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_factory_core.testing import json_response, openai_completion, serve_handler
from tests.redis_server import RedisServer

from ..test_scale_out import eventually, gateway

ADMIN = "admin-key-0123456789abcdef"


@pytest.fixture
def upstream() -> Iterator[str]:
    with serve_handler(lambda request: json_response(openai_completion("hi"))) as base:
        yield base


def config(tmp_path: Path, upstream: str, redis_url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"state: {redis_url}\n"
        "router: {num_retries: 0}\n"
        f"server: {{admin_key: {ADMIN}, usage_db: '{tmp_path / 'usage.sqlite3'}'}}\n"
        "providers:\n"
        "  - {provider: openai, model_name: gpt-4o, model: gpt-4o, api_key: sk-a-000000001,\n"
        f"     api_base: '{upstream}/v1'}}\n"
    )
    return path


def chat(base: str, key: str, model: str = "gpt-4o") -> int:
    reply = httpx.post(
        f"{base}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    return reply.status_code


def create(base: str, **spec: object) -> str:
    reply = httpx.post(
        f"{base}/admin/keys", headers={"authorization": f"Bearer {ADMIN}"}, json={"name": "t", **spec}, timeout=10
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["key"])


def test_limits_and_budgets_hold_across_processes(tmp_path: Path, upstream: str, redis_server: RedisServer) -> None:
    path = config(tmp_path, upstream, redis_server.url)
    with gateway(path) as first, gateway(path) as second:
        if time.time() % 60 > 45:  # fixed one-minute windows: do not straddle one
            time.sleep(61 - time.time() % 60)
        key = create(first, rpm=4)
        eventually(lambda: chat(second, key) == 200, within=5)  # the other process reads new keys within 1 s
        statuses = []
        for base in (first, second, first, second, first, second):
            statuses.append(chat(base, key))
            time.sleep(0.3)  # > the counters' sync interval
        assert statuses.count(200) == 3 and statuses[3:] == [429, 429, 429]

        budget = create(first, budget=0.000001, budget_period="month", models=["gpt-4o"])
        eventually(lambda: chat(second, budget, "other") == 403, within=5)  # second knows the key
        assert chat(first, budget, "other") == 403  # first reads the (empty) spend, spending nothing
        assert chat(second, budget) == 200  # second spends the budget
        time.sleep(1.0)  # pricing, then the counters' next sync
        assert chat(first, budget) == 429  # first learned it from Redis, without spending itself
