"""Several real gateway processes sharing state through a real redis-server behave as one gateway:
a key rate-limited through one is avoided by the others; ``--workers 2`` shares it too; Redis
killed and restarted under load loses no request."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core.testing import json_response, openai_completion, serve_handler
from tests.redis_server import RedisServer, free_port

MESSAGES = [{"role": "user", "content": "hi"}]


class Upstream:
    """An OpenAI-style upstream on a real socket with two keys' worth of paths: /a/... and /b/..."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.limited: set[str] = set()
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        which = request.url.path.split("/")[1]
        with self._lock:
            self.hits.append(which)
        if which in self.limited:
            body = {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit"}}
            return json_response(body, 429, {"retry-after": "30"})
        return json_response(openai_completion(f"from {which}"))


def write_config(path: Path, upstream: str, redis_url: str) -> Path:
    path.write_text(
        f"state: {redis_url}\n"
        "router: {strategy: first_available, max_cooldown_wait: 0, num_retries: 0}\n"
        "providers:\n"
        f"  - {{provider: openai, model_name: gpt-4o, api_key: sk-a-000000001, api_base: '{upstream}/a/v1'}}\n"
        f"  - {{provider: openai, model_name: gpt-4o, api_key: sk-b-000000002, api_base: '{upstream}/b/v1'}}\n"
    )
    return path


@contextlib.contextmanager
def gateway(config: Path, *extra: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "LLM_FACTORY_HTTP_TRANSPORT": "aiohttp", "PYTHONUNBUFFERED": "1"}
    log = config.with_name(f"gateway-{port}.log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llm_factory_server",
                "--config",
                str(config),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()


def ask(base: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}, timeout=10)


def eventually(predicate: Callable[[], Any], within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not within {within}s"
        time.sleep(0.02)


def deployment_state(base: str, api_base_suffix: str) -> str:
    status = httpx.get(f"{base}/v1/providers/status", timeout=5).json()
    rows = status["data"] if isinstance(status, dict) and "data" in status else status
    row = next(r for r in rows if str(r.get("api_base", "")).endswith(api_base_suffix))
    return str(row["state"])


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    fake = Upstream()
    with serve_handler(fake.handle) as base:
        yield fake, base


def warm(base: str) -> None:
    """Each gateway's shared-state task starts with its first request; give it time to connect."""
    assert ask(base).status_code == 200
    time.sleep(0.5)


def test_two_gateways_behave_as_one(upstream: tuple[Upstream, str], redis_server: RedisServer, tmp_path: Path) -> None:
    fake, base = upstream
    config = write_config(tmp_path / "config.yaml", base, redis_server.url)
    with gateway(config) as one, gateway(config) as two:
        warm(one)
        warm(two)
        fake.limited.add("a")
        reply = ask(one)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "from b"
        eventually(lambda: deployment_state(two, "/a/v1") == "cooldown", within=1.0)
        hits = fake.hits.count("a")
        for _ in range(5):
            assert ask(two).json()["choices"][0]["message"]["content"] == "from b"
        assert fake.hits.count("a") == hits  # the second gateway never hammered the limited key


def test_workers_share_state(upstream: tuple[Upstream, str], redis_server: RedisServer, tmp_path: Path) -> None:
    fake, base = upstream
    config = write_config(tmp_path / "config.yaml", base, redis_server.url)
    with gateway(config, "--workers", "2") as gw:
        for _ in range(6):
            assert ask(gw).status_code == 200
        time.sleep(0.6)  # every worker joined the fleet at start-up, whether it served yet or not
        fake.limited.add("a")
        ask(gw)
        time.sleep(0.3)
        hits = fake.hits.count("a")
        for _ in range(10):
            assert ask(gw).json()["choices"][0]["message"]["content"] == "from b"
        assert fake.hits.count("a") == hits  # whichever worker answered knew


def test_redis_restart_under_load_loses_no_request(
    upstream: tuple[Upstream, str], redis_server: RedisServer, tmp_path: Path
) -> None:
    fake, base = upstream
    config = write_config(tmp_path / "config.yaml", base, redis_server.url)
    with gateway(config) as one, gateway(config) as two:
        warm(one)
        warm(two)
        failures: list[int] = []
        for i in range(60):
            if i == 15:
                redis_server.stop()
            if i == 40:
                redis_server.start()
            reply = ask(one if i % 2 else two)
            if reply.status_code != 200:
                failures.append(reply.status_code)
            time.sleep(0.01)
        assert failures == []
        fake.limited.add("a")  # and after the restart the two are one again
        ask(one)
        eventually(lambda: deployment_state(two, "/a/v1") == "cooldown", within=8.0)


def test_metrics_add_up_every_worker(upstream: tuple[Upstream, str], tmp_path: Path) -> None:
    _fake, base = upstream
    config = tmp_path / "config.yaml"
    config.write_text(
        f"providers:\n  - {{provider: openai, model_name: gpt-4o, api_key: sk-a-000000001, api_base: '{base}/a/v1'}}\n"
    )
    with gateway(config, "--workers", "2") as gw:
        for _ in range(20):  # a new connection each: the kernel spreads them over both workers
            assert ask(gw).status_code == 200
        for _ in range(5):  # whichever worker answers the scrape reports all 20
            text = httpx.get(f"{gw}/metrics", timeout=10).text
            counts = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("llm_factory_requests_total{") and 'status="200"' in line
            ]
            assert sum(counts) == 20, text[:2000]
