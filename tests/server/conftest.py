from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


# -- the splice, observed ------------------------------------------------------------------------


@dataclass
class SplicePath:
    """What the pass-through did, from inside the gateway's process: splices begun, chunks written
    through a ``ClientSink``, pauses for a full client connection."""

    transport: str
    splices: int = 0
    sink_writes: int = 0
    pauses: int = 0
    spliced: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)

    def took_the_splice(self) -> None:
        """On aiohttp the stream was spliced; on httpx it took the generator path."""
        if self.transport == "aiohttp":
            assert self.splices >= 1 and self.sink_writes >= 1, self
        else:
            assert self.splices == 0 and self.sink_writes == 0, self


@pytest.fixture
def path(http_transport: str, monkeypatch: pytest.MonkeyPatch) -> SplicePath:
    """What the splice did in this test (the gateway runs in this process)."""
    from llm_factory_core._aiohttp import FastResponseStream
    from llm_factory_core._http1 import Http1Body
    from llm_factory_server._passthrough import ClientSink

    seen = SplicePath(http_transport)
    write, when_writable = ClientSink.write, ClientSink.when_writable

    def counted(splice: Any) -> Any:
        async def counted_splice(self: Any, on_data: Any, flow: Any) -> None:
            seen.splices += 1
            seen.spliced.set()
            await splice(self, on_data, flow)

        return counted_splice

    def counted_write(self: Any, chunk: Any) -> None:
        seen.sink_writes += 1
        write(self, chunk)

    def counted_when_writable(self: Any, callback: Callable[[], None] | None) -> None:
        if callback is not None:
            seen.pauses += 1
            seen.paused.set()
        when_writable(self, callback)

    for body in (Http1Body, FastResponseStream):  # the body of a call without and through a proxy
        monkeypatch.setattr(body, "splice", counted(body.splice))
    monkeypatch.setattr(ClientSink, "write", counted_write)
    monkeypatch.setattr(ClientSink, "when_writable", counted_when_writable)
    return seen
