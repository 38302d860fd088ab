from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_factory_core import LLMFactory
from llm_factory_server import ServerSettings, create_app

from .helpers import OPEN_CLIENTS, ServerThread, Upstream, make_factory


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """No developer variable, .env or config.yaml may configure a test's gateway."""
    for name in list(os.environ):
        if name.split("_", 1)[0] in {"OPENAI", "QWEN", "DEEPSEEK", "CLAUDE", "GEMINI", "LLM"}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # usage and responses databases
    yield


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


Serve = Callable[..., ServerThread]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(factory, **server_settings)``: the gateway app around ``factory`` on a free port."""
    started: list[tuple[ServerThread, LLMFactory]] = []

    def start(factory: LLMFactory, **settings: Any) -> ServerThread:
        app = create_app(factory, settings=ServerSettings(**settings))
        server = ServerThread(app).start()
        started.append((server, factory))
        return server

    yield start
    for server, factory in started:
        server.stop()
        factory.close()


@pytest.fixture
def gateway(upstream: Upstream, serve: Serve) -> ServerThread:
    """One model ``gpt-4o`` on one fake deployment ``a``; no client keys."""
    return serve(make_factory(upstream))
