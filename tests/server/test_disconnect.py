"""A client that goes away cancels its upstream request at once, and the deployment is not blamed."""

from __future__ import annotations

import socket
import threading
from typing import Any

import anyio
import httpx
import pytest

from llm_factory_core.testing import openai_chunks, sse_body
from llm_factory_server import create_app

from .conftest import Serve
from .helpers import ServerThread, Upstream, make_factory

BODY = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": %s}'


class Hanging:
    """An upstream that answers part of the way, then hangs until cancelled; records the cancel."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def stream(self, request: httpx.Request) -> httpx.Response:
        async def body():  # type: ignore[no-untyped-def]
            try:
                yield sse_body(openai_chunks(["first"])[:2], done=False)
                self.started.set()
                await anyio.sleep(60)
                yield b"data: [DONE]\n\n"
            finally:
                self.cancelled.set()  # closed (GeneratorExit) or cancelled: either way released

        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async def silent(self, request: httpx.Request) -> httpx.Response:
        self.started.set()
        try:
            await anyio.sleep(60)
        finally:
            self.cancelled.set()
        raise AssertionError("not reached")


def _raw_request(port: int, stream: bool) -> socket.socket:
    body = BODY % (b"true" if stream else b"false")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    return sock


@pytest.mark.parametrize("server_kind", ["gateway", "plain uvicorn"])
@pytest.mark.parametrize("when", ["after_commit", "before_first_token", "non_streaming"])
def test_disconnect_cancels_upstream(upstream: Upstream, serve: Serve, when: str, server_kind: str) -> None:
    # Under the gateway's own protocol the connection reports the departure; under another server
    # (the app mounted elsewhere) a task waits on receive() for it.
    hanging = Hanging()
    upstream.script("a", hanging.stream if when == "after_commit" else hanging.silent)
    factory = make_factory(upstream)
    plain = server_kind != "gateway"
    server = ServerThread(create_app(factory), http="httptools").start() if plain else serve(factory)
    try:
        _disconnect_and_check(server, factory, hanging, when)
    finally:
        if plain:
            server.stop()
            factory.close()


def _disconnect_and_check(server: ServerThread, factory: Any, hanging: Hanging, when: str) -> None:
    sock = _raw_request(server.port, stream=when != "non_streaming")
    if when == "after_commit":
        sock.settimeout(10)
        received = b""
        while b'"first"' not in received:
            received += sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200")
    assert hanging.started.wait(10)
    sock.close()
    assert hanging.cancelled.wait(10), "the upstream request was not cancelled"
    # the connection went back, and the deployment is not blamed for the client's departure
    for _ in range(200):
        status = factory.status()[0]
        if status.in_flight == 0:
            break
        threading.Event().wait(0.01)
    assert status.in_flight == 0
    assert status.failures == 0 and status.state == "healthy"
    # the gateway still serves
    assert (
        httpx.post(
            f"{server.url}/v1/chat/completions", content=BODY % b"false", headers={"content-type": "application/json"}
        ).status_code
        == 200
    )


@pytest.mark.anyio
async def test_a_client_leaving_as_the_reply_is_ready_leaves_no_cancellation_behind(upstream: Upstream) -> None:
    import asyncio

    from llm_factory_core.testing import openai_completion
    from llm_factory_server import create_app
    from llm_factory_server._chat import ChatCompletions

    from .helpers import json_response

    called = anyio.Event()

    async def stubborn(request: httpx.Request) -> httpx.Response:
        called.set()
        try:
            await anyio.sleep(5)
        except asyncio.CancelledError:
            pass  # a library below that swallows the cancellation and answers anyway
        return json_response(openai_completion("too late"))

    upstream.script("a", stubborn)
    app = create_app(make_factory(upstream))
    messages = [{"type": "http.request", "body": BODY % b"false", "more_body": False}]

    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await called.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers, "app": app}
    await ChatCompletions()(scope, receive, send)
    assert sent == []  # the client is gone: nothing is written
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await anyio.sleep(0.01)  # and no cancellation is left pending for what this task does next


class _Cycle:
    disconnected = False


class _Protocol:
    on_disconnect = None


@pytest.mark.anyio
@pytest.mark.parametrize("gone_already", [False, True])
async def test_under_the_gateways_server_the_connection_reports_the_departure_without_a_task(
    gone_already: bool,
) -> None:
    import asyncio

    from llm_factory_server._chat import _Departure
    from llm_factory_server._protocol import SPLICE_EXTENSION, ResponseSplice

    cycle, protocol = _Cycle(), _Protocol()
    cycle.disconnected = gone_already
    scope = {"extensions": {SPLICE_EXTENSION: ResponseSplice(protocol, cycle)}}  # type: ignore[arg-type]

    async def request() -> None:
        await asyncio.sleep(10)

    task = asyncio.get_running_loop().create_task(request())
    tasks_before = len(asyncio.all_tasks())
    departure = _Departure(scope, None, task, asyncio.get_running_loop())
    assert len(asyncio.all_tasks()) == tasks_before  # no watcher task
    if not gone_already:
        assert protocol.on_disconnect is not None and not departure.left
        protocol.on_disconnect()  # what GatewayHttpProtocol.connection_lost does
    assert departure.left
    with pytest.raises(asyncio.CancelledError):
        await task
    departure.stop()
    assert protocol.on_disconnect is None  # the next request on the connection starts clean
