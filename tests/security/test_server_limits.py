"""Connection and header limits of the gateway's HTTP layer (issue 20 item 4), over real sockets.

uvicorn with httptools bounds neither a request head's size nor the time it takes to arrive, and
accepts any number of connections: a slowloris client held thousands of sockets and the
unauthenticated ``/health`` took megabytes of headers. The gateway's protocol
(``llm_factory_server._protocol``) adds a header deadline, a body deadline, a head size cap and a
connection cap; ``timeout_keep_alive`` and ``limit_concurrency`` are uvicorn's, set from the
server settings. Each test starts the real server on 127.0.0.1 with the options ``llm-factory
serve`` uses.
"""

from __future__ import annotations

import functools
import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_factory_core import LLMFactory
from llm_factory_core.testing import FaultyUpstream
from llm_factory_server import ServerSettings, _serve
from llm_factory_server._protocol import GatewayHttpProtocol, ProtocolLimits, uvicorn_options
from tests.reliability.server.conftest import app_closing
from tests.server.helpers import ServerThread

from .conftest import configs

BODY = b'{"model": "primary", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
def start(upstream: FaultyUpstream) -> Iterator[Any]:
    servers: list[ServerThread] = []

    def run(**settings: Any) -> ServerThread:
        server = ServerThread(app_closing(LLMFactory(configs(upstream)), **settings)).start()
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


def connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything until the server closes the connection (fails the test after ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


# -- slowloris: the request head must arrive in time ------------------------------------------------


def test_a_trickled_request_head_is_cut_at_the_header_timeout(start: Any) -> None:
    server = start(header_timeout=0.5)
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    reply = b""
    sock.settimeout(0.1)
    for i in range(60):  # one header byte every 0.1 s: never done, never idle long
        try:
            sock.sendall(b"x" if i else b"X-Slow: ")
        except OSError:
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        reply += chunk
        if not chunk or reply.endswith(b"in time."):
            break
    elapsed = time.monotonic() - started
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert 0.4 < elapsed < 3, elapsed


def test_a_connection_that_never_sends_is_closed(start: Any) -> None:
    server = start(header_timeout=0.5)
    socks = [connect(server) for _ in range(20)]
    started = time.monotonic()
    replies = [read_all(sock, timeout=5) for sock in socks]
    assert time.monotonic() - started < 4
    assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies[0]
    for sock in socks:
        sock.close()
    assert httpx.get(f"{server.url}/health").status_code == 200  # the server itself is fine


def test_a_slow_head_within_the_limit_is_served(start: Any) -> None:
    server = start(header_timeout=2)
    sock = connect(server)
    for part in (b"GET /health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"Connection: close\r\n", b"\r\n"):
        sock.sendall(part)
        time.sleep(0.2)
    reply = read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"status":"ok"}')


def test_each_request_on_a_keep_alive_connection_gets_its_own_header_deadline(start: Any) -> None:
    server = start(header_timeout=0.6, timeout_keep_alive=5)
    sock = connect(server)
    for _ in range(3):  # 3 x 0.3 s of requests: more than one header deadline on one connection
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.3)
        sock.sendall(b"\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # then stalls
    assert read_all(sock).startswith(b"HTTP/1.1 408")
    sock.close()


def test_a_trickled_body_is_cut_at_the_body_timeout(start: Any, upstream: FaultyUpstream) -> None:
    server = start(body_timeout=0.5)
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY[:10])
    )
    reply = read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert time.monotonic() - started < 3
    assert upstream.count() == 0
    # an ordinary request is unaffected
    response = httpx.post(
        f"{server.url}/v1/chat/completions", content=BODY, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200


def test_idle_keep_alive_connections_are_closed(start: Any) -> None:
    server = start(timeout_keep_alive=0.3)
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert closed_within(sock, 3)
    sock.close()


# -- the request head's size ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"X-Big: " + b"a" * 64 * 1024 + b"\r\n",  # one huge header
        b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 30) for i in range(2000)),  # many small ones
        b"Cookie: " + b"c" * 10 * 1024 * 1024 + b"\r\n",  # 10 MB
    ],
    ids=["64k-header", "2000-headers", "10MB"],
)
def test_oversized_heads_are_431_on_the_open_health_route(start: Any, head: bytes) -> None:
    server = start()  # the defaults: 16 KiB
    sock = connect(server)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close while a 10 MB head is still being sent
    try:
        reply = read_all(sock)
    except ConnectionResetError:
        reply = b""
    sock.close()
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_the_431_names_the_setting_and_a_long_url_counts_too(start: Any) -> None:
    server = start(max_header_bytes=4096)
    response = httpx.get(f"{server.url}/health", headers={"x-big": "a" * 5000})
    assert response.status_code == 431 and "server.max_header_bytes" in response.text
    assert httpx.get(f"{server.url}/health?" + "q" * 5000).status_code == 431
    assert httpx.get(f"{server.url}/health", headers={"x-ok": "a" * 3000}).status_code == 200


# -- connections --------------------------------------------------------------------------------------


def test_connections_beyond_the_limit_are_closed_at_once(start: Any) -> None:
    server = start(limit_concurrency=4, header_timeout=30)
    socks = [connect(server) for _ in range(12)]
    time.sleep(0.3)
    closed = [closed_within(sock, 0.2) for sock in socks]
    assert closed.count(False) <= 4 and closed.count(True) >= 8, closed
    assert len(server.server.server_state.connections) <= 4
    for sock in socks:
        sock.close()
    for _ in range(100):  # once the idle ones are gone, requests are served again
        time.sleep(0.02)
        if not server.server.server_state.connections:
            break
    assert httpx.get(f"{server.url}/health").status_code == 200


# -- the settings reach uvicorn ------------------------------------------------------------------------


def test_the_defaults() -> None:
    settings = ServerSettings()
    # Idle connections outlive the clients' own idle limits (httpx 5 s, aiohttp 15 s, load
    # balancers 60 s): closing first races their next request into a connection reset.
    assert settings.limit_concurrency == 1000 and settings.timeout_keep_alive == 75
    assert settings.header_timeout == 10 and settings.body_timeout == 60 and settings.max_header_bytes == 16384
    options = uvicorn_options(settings)
    assert options["limit_concurrency"] == 1000 and options["timeout_keep_alive"] == 75
    assert options["h11_max_incomplete_event_size"] == 16384
    http = options["http"]
    assert isinstance(http, functools.partial) and http.func is GatewayHttpProtocol
    assert http.keywords["limits"] == ProtocolLimits(10, 60, 16384, 1000)
    assert pickle.loads(pickle.dumps(http)).keywords == http.keywords  # --workers processes get it too


def test_llm_factory_serve_runs_uvicorn_with_the_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, upstream: FaultyUpstream
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(_serve.uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(_serve, "_settle_heap", lambda: None)
    monkeypatch.setattr(_serve.logging.config, "dictConfig", lambda config: None)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(
        "providers:\n  - provider: openai\n    model_name: m\n    api_key: sk-test-0001\n"
        f"    api_base: {upstream.base_url}\n"
        "server:\n  limit_concurrency: 77\n  timeout_keep_alive: 2.5\n  header_timeout: 3\n  body_timeout: 4\n"
        "  max_header_bytes: 9000\n"
    )
    (tmp_path / ".env").write_text("")
    _serve.serve(config=str(config), env_file=str(tmp_path / ".env"))
    assert seen["limit_concurrency"] == 77 and seen["timeout_keep_alive"] == 2.5
    assert seen["http"].keywords["limits"] == ProtocolLimits(3, 4, 9000, 77)


@pytest.mark.parametrize(
    "bad",
    [{"limit_concurrency": 0}, {"header_timeout": 0}, {"body_timeout": -1}, {"max_header_bytes": 10},
     {"timeout_keep_alive": 0}],
)  # fmt: skip
def test_limits_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ServerSettings(**bad)
