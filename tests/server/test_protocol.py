"""The gateway's uvicorn protocol (``_protocol.GatewayHttpProtocol``): the request path under it
leaves no garbage-collector work per request, and a JSON reply is one write (``ResponseSplice.respond``)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import httptools
import httpx
import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from llm_factory_core import ModelConfig
from llm_factory_server._protocol import ResponseSplice

from .helpers import UPSTREAM_KEY, FakeOpenAIServer, garbage_left_by, serving_factory

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_requests_leave_no_reference_cycles(http_transport: str) -> None:
    # The splice extension once held the request's cycle, whose scope held the extension: every
    # request's objects (~12) waited for a collection, and the collections (10-15 ms, every ~1,300
    # requests at one request at a time) were the latency tail. Over real sockets, on both
    # transports: an in-memory upstream's replies are closed before they are sent.
    with FakeOpenAIServer() as upstream:
        config = ModelConfig(provider="openai", model_name="gpt-4o", api_key=UPSTREAM_KEY, api_base=upstream.url)
        with (
            serving_factory(http_transport, config, num_retries=0) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,  # one kept-alive connection
        ):

            def requests() -> None:
                for _ in range(10):
                    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
                    streamed = client.post("/v1/chat/completions", json={**BODY, "stream": True})
                    assert streamed.content.endswith(b"data: [DONE]\n\n")

            requests()  # warm: pools, caches and lazily built state are not garbage
            assert garbage_left_by(requests) == []


# -- ResponseSplice.respond: a whole JSON reply in one write -----------------------------------


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(*, keep_alive: bool = True, access_log: bool = False) -> tuple[Any, _Transport, list[int]]:
    """uvicorn's own ``RequestResponseCycle`` over a transport that records its writes."""
    transport = _Transport()
    completed: list[int] = []
    cycle = RequestResponseCycle(
        scope={"method": "POST", "http_version": "1.1", "type": "http"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=access_log,
        default_headers=[(b"date", b"Sun, 06 Dec 2026 08:00:00 GMT")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: completed.append(1),
    )
    return cycle, transport, completed


class _Reply:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def _parse(data: bytes) -> tuple[int, _Reply]:
    reply = _Reply()
    parser = httptools.HttpResponseParser(reply)
    parser.feed_data(data)
    return parser.get_status_code(), reply


@pytest.mark.anyio
async def test_respond_writes_head_and_body_at_once_and_completes_the_cycle() -> None:
    cycle, transport, completed = _cycle()
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    assert ResponseSplice(object(), cycle).respond(201, headers, body)  # type: ignore[arg-type]
    assert len(transport.writes) == 1  # uvicorn's send makes two system calls of it
    status, reply = _parse(transport.writes[0])
    assert status == 201 and reply.complete and reply.body == body
    assert reply.headers[b"date"] == b"Sun, 06 Dec 2026 08:00:00 GMT" and b"connection" not in reply.headers
    # Left as uvicorn's own send leaves it: complete, the next request started, no more sends.
    assert cycle.response_started and cycle.response_complete and completed == [1] and not transport.closed
    with pytest.raises(RuntimeError, match="after response already completed"):
        await cycle.send({"type": "http.response.body", "body": b"x"})


def test_respond_closes_a_connection_that_is_not_kept_alive() -> None:
    cycle, transport, completed = _cycle(keep_alive=False)
    assert ResponseSplice(object(), cycle).respond(200, [(b"content-length", b"2")], b"{}")  # type: ignore[arg-type]
    status, reply = _parse(transport.writes[0])
    assert status == 200 and reply.headers[b"connection"] == b"close" and transport.closed and completed == [1]


def test_respond_declines_what_uvicorns_send_must_handle() -> None:
    for state in ("started", "disconnected", "paused", "access_log"):
        cycle, transport, completed = _cycle(access_log=state == "access_log")
        cycle.response_started = state == "started"
        cycle.disconnected = state == "disconnected"
        cycle.flow.write_paused = state == "paused"
        assert not ResponseSplice(object(), cycle).respond(200, [(b"content-length", b"2")], b"{}")  # type: ignore[arg-type]
        assert transport.writes == [] and completed == [], state


def test_an_http_1_0_client_gets_its_reply_and_the_connection_closed(http_transport: str) -> None:
    with FakeOpenAIServer() as upstream:
        config = ModelConfig(provider="openai", model_name="gpt-4o", api_key=UPSTREAM_KEY, api_base=upstream.url)
        with serving_factory(http_transport, config, num_retries=0) as server:
            host, port = server.url.removeprefix("http://").split(":")
            body = json.dumps(BODY).encode()
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.0\r\nhost: %s:%s\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (host.encode(), port.encode(), len(body), body)
                )
                data = b""
                while chunk := sock.recv(65536):  # until the gateway closes the connection
                    data += chunk
    status, reply = _parse(data)
    assert status == 200 and reply.complete and reply.headers[b"connection"] == b"close"
    assert json.loads(reply.body)["choices"][0]["message"]["content"] == "Hello from a real socket"


@pytest.mark.anyio
async def test_respond_starts_a_chunked_stream_with_its_first_frame_and_send_goes_on_from_there() -> None:
    cycle, transport, completed = _cycle()
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    assert ResponseSplice(object(), cycle).respond(200, headers, b"data: 1\n\n", more_body=True)  # type: ignore[arg-type]
    assert len(transport.writes) == 1 and not cycle.response_complete and completed == []
    await cycle.send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
    status, reply = _parse(b"".join(transport.writes))
    assert status == 200 and reply.complete and reply.headers[b"transfer-encoding"] == b"chunked"
    assert reply.body == b"data: 1\n\ndata: [DONE]\n\n" and cycle.response_complete and completed == [1]
