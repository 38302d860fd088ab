from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ..conftest import Serve
from ..helpers import CLIENT_KEY, ServerThread, Upstream, deployment, error_reply, make_factory

RATE_LIMITED = "Rate limit reached for requests"


class Gateway:
    """A running gateway with deployment ``a-gpt-4o`` cooling down (a 429 with Retry-After: 60)
    and ``b-qwen-plus`` healthy."""

    def __init__(self, server: ServerThread, key: str | None) -> None:
        self.server = server
        self.url = server.url
        self.app: Any = server.server.config.app
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=server.url, headers=headers, timeout=10)

    def chat(self, model: str) -> httpx.Response:
        return self.http.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )

    def status(self) -> dict[str, dict[str, Any]]:
        reply = self.http.get("/v1/providers/status")
        assert reply.status_code == 200, reply.text
        return {s["name"]: s for s in reply.json()["data"]}


StartGateway = Callable[..., Gateway]


@pytest.fixture
def start_gateway(upstream: Upstream, serve: Serve) -> Iterator[StartGateway]:
    opened: list[Gateway] = []

    def start(*, keyed: bool = False, chat: bool = True, **settings: Any) -> Gateway:
        """``chat``: send the 429 and the healthy request now (else the test sends them)."""
        upstream.script("a", lambda r: error_reply(429, RATE_LIMITED, "rate_limit_exceeded", {"Retry-After": "60"}))
        factory = make_factory(upstream, deployment("a", "gpt-4o"), deployment("b", "qwen-plus"))
        if keyed:
            settings["api_keys"] = [CLIENT_KEY]
        gateway = Gateway(serve(factory, **settings), CLIENT_KEY if keyed else None)
        opened.append(gateway)
        if chat:
            assert gateway.chat("gpt-4o").status_code == 429
            assert gateway.chat("qwen-plus").status_code == 200
        return gateway

    yield start
    for gateway in opened:
        gateway.http.close()
