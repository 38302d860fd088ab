"""FaultyUpstream is validated against the official openai SDK: its healthy replies parse, its error
replies raise the SDK's own error types, and each fault happens on the wire as described."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import openai
import pytest

import llm_factory_core.testing
from llm_factory_core.testing import Fault, FaultyUpstream

MESSAGES: Any = [{"role": "user", "content": "say something nice"}]


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    with FaultyUpstream() as server:
        yield server


def sdk(server: FaultyUpstream, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=server.base_url, api_key="sk-fake-key-0001", **kwargs)


def test_exported_from_testing() -> None:
    assert {"Fault", "FaultyUpstream", "UpstreamRequest"} <= set(llm_factory_core.testing.__all__)


def test_healthy_reply_parses_with_usage(upstream: FaultyUpstream) -> None:
    with sdk(upstream) as client:
        reply = client.chat.completions.create(model="primary", messages=MESSAGES)
    assert reply.model == "primary"
    assert reply.choices[0].message.content == "This is a complete reply from primary, sent one word at a time."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 3 and reply.usage.completion_tokens == 13
    assert reply.usage.total_tokens == 16
    [request] = upstream.requests
    assert (request.model, request.fault, request.stream, request.rule) == ("primary", "ok", False, None)
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-fake-key-0001"
    assert "sk-fake" not in repr(request)


@pytest.mark.parametrize("include_usage", [True, False])
def test_healthy_stream_parses_and_honours_include_usage(upstream: FaultyUpstream, include_usage: bool) -> None:
    with sdk(upstream) as client:
        chunks = list(
            client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": include_usage}
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a complete reply from m, sent one word at a time."
    assert len({c.id for c in chunks}) == 1
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage) == 1 and chunks[-1].usage is not None and chunks[-1].choices == []
        assert chunks[-1].usage.completion_tokens == 13
    else:
        assert usage == []


def test_rate_limit_with_and_without_retry_after(upstream: FaultyUpstream) -> None:
    upstream.set_rule("slow-down", Fault.rate_limit(retry_after=2))
    upstream.set_rule("azure", Fault.rate_limit(retry_after_ms=1500))
    upstream.set_rule("no-hint", Fault.rate_limit())
    with sdk(upstream) as client:
        with pytest.raises(openai.RateLimitError) as hinted:
            client.chat.completions.create(model="slow-down", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as azure:
            client.chat.completions.create(model="azure", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as bare:
            client.chat.completions.create(model="no-hint", messages=MESSAGES)
    assert hinted.value.response.headers["retry-after"] == "2"
    assert azure.value.response.headers["retry-after-ms"] == "1500"
    assert "retry-after" not in bare.value.response.headers
    assert bare.value.code == "rate_limit_exceeded"
    assert upstream.count(fault="rate_limit") == 3


def test_sdk_retry_after_is_honoured_and_sequences_count_per_model(upstream: FaultyUpstream) -> None:
    upstream.set_rule("flaky", [Fault.rate_limit(retry_after=0.2), Fault.ok()])
    with sdk(upstream, max_retries=2) as client:
        reply = client.chat.completions.create(model="flaky", messages=MESSAGES)
        again = client.chat.completions.create(model="flaky", messages=MESSAGES)
    assert reply.model == again.model == "flaky"
    assert [r.fault for r in upstream.requests] == ["rate_limit", "ok", "ok"]
    first, second = upstream.requests[:2]
    assert second.at - first.at >= 0.2 * 0.9  # the SDK waited for the hint
    assert upstream.count("flaky") == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_raise_the_sdk_error(upstream: FaultyUpstream, status: int) -> None:
    upstream.set_rule("broken", Fault.server_error(status))
    with sdk(upstream) as client, pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="broken", messages=MESSAGES)
    assert info.value.status_code == status
    assert upstream.count("broken", fault="server_error") == 1


def test_server_error_once_then_healthy_is_per_model(upstream: FaultyUpstream) -> None:
    upstream.set_rule("a", [Fault.server_error(500), Fault.ok()])
    upstream.set_rule("b", [Fault.server_error(500), Fault.ok()])
    with sdk(upstream) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="a", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="b", messages=MESSAGES)
        assert client.chat.completions.create(model="a", messages=MESSAGES).model == "a"
        assert client.chat.completions.create(model="b", messages=MESSAGES).model == "b"
    upstream.reset()
    assert upstream.requests == []
    with sdk(upstream) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="a", messages=MESSAGES)


def test_context_length_and_content_filter_errors(upstream: FaultyUpstream) -> None:
    upstream.set_rule("small", Fault.context_length())
    upstream.set_rule("filtered", Fault.content_filter())
    with sdk(upstream) as client:
        with pytest.raises(openai.BadRequestError) as small:
            client.chat.completions.create(model="small", messages=MESSAGES)
        with pytest.raises(openai.BadRequestError) as filtered:
            client.chat.completions.create(model="filtered", messages=MESSAGES)
    assert small.value.code == "context_length_exceeded"
    assert "maximum context length" in small.value.message
    assert filtered.value.code == "content_filter"
    assert isinstance(filtered.value.body, dict)
    assert filtered.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"


def test_reset_is_a_connection_error(upstream: FaultyUpstream) -> None:
    upstream.set_rule("gone", Fault.reset())
    with sdk(upstream) as client, pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gone", messages=MESSAGES)
    assert upstream.count("gone", fault="reset") == 1


def test_reset_is_a_real_tcp_reset(upstream: FaultyUpstream) -> None:
    upstream.set_rule("gone", Fault.reset())
    body = b'{"model": "gone", "messages": [{"role": "user", "content": "hi"}]}'
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass


def test_hang_accepts_and_never_answers(upstream: FaultyUpstream) -> None:
    upstream.set_rule("silent", Fault.hang())
    with sdk(upstream, timeout=0.3) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="silent", messages=MESSAGES)
    assert upstream.count("silent", fault="hang") == 1


def test_slow_first_token_sends_headers_then_waits(upstream: FaultyUpstream) -> None:
    upstream.set_rule("slow", Fault.slow_first_token(0.3))
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.1)) as client:
        body = {"model": "slow", "messages": MESSAGES, "stream": True}
        with client.stream("POST", upstream.base_url + "/chat/completions", json=body) as response:
            assert response.status_code == 200  # headers came at once
            with pytest.raises(httpx.ReadTimeout):
                response.read()
    with sdk(upstream) as client:
        chunks = list(client.chat.completions.create(model="slow", messages=MESSAGES, stream=True))
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert client.chat.completions.create(model="slow", messages=MESSAGES).model == "slow"


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_cut_stream_breaks_after_n_tokens(upstream: FaultyUpstream) -> None:
    upstream.set_rule("cut", Fault.cut(after_tokens=3))
    chunks: list[Any] = []
    with sdk(upstream) as client, pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in client.chat.completions.create(model="cut", messages=MESSAGES, stream=True):
            chunks.append(chunk)
    assert stream_text(chunks) == "This is a "


def test_cut_with_reset_and_cut_json_reply(upstream: FaultyUpstream) -> None:
    upstream.set_rule("rst", Fault.cut(after_tokens=1, reset=True))
    upstream.set_rule("cut", Fault.cut(after_tokens=1))
    with httpx.Client(timeout=5) as client:
        body = {"model": "rst", "messages": MESSAGES, "stream": True}
        with (
            client.stream("POST", upstream.base_url + "/chat/completions", json=body) as response,
            pytest.raises(httpx.TransportError),
        ):
            response.read()
        with pytest.raises(httpx.RemoteProtocolError):  # Content-Length promised more
            client.post(upstream.base_url + "/chat/completions", json={"model": "cut", "messages": MESSAGES})
        with pytest.raises(httpx.ReadError):
            client.post(upstream.base_url + "/chat/completions", json={"model": "rst", "messages": MESSAGES})


def test_stalled_stream_keeps_the_connection_silent(upstream: FaultyUpstream) -> None:
    upstream.set_rule("stall", Fault.stall(after_tokens=2))
    chunks: list[Any] = []
    with sdk(upstream, timeout=0.3) as client, pytest.raises((httpx.ReadTimeout, openai.APITimeoutError)):
        for chunk in client.chat.completions.create(model="stall", messages=MESSAGES, stream=True):
            chunks.append(chunk)
    assert stream_text(chunks) == "This is "


def sse_events(server: FaultyUpstream, model: str) -> list[str]:
    body = {"model": model, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=5) as client:
        response = client.post(server.base_url + "/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return [part for part in response.text.split("\n\n") if part]


def test_one_malformed_event(upstream: FaultyUpstream) -> None:
    upstream.set_rule("odd", Fault.malformed_event(after_tokens=2))
    events = sse_events(upstream, "odd")
    healthy = sse_events(upstream, "fine")
    assert len(events) == len(healthy) + 1
    assert events[-1] == healthy[-1] == "data: [DONE]"
    bad = [e for e in events if e != "data: [DONE]" and not e.endswith("}")]
    assert bad == [events[3]]  # role, two tokens, then the broken one


def test_complete_stream_without_done(upstream: FaultyUpstream) -> None:
    upstream.set_rule("nodone", Fault.no_done())
    events = sse_events(upstream, "nodone")
    assert "data: [DONE]" not in events
    assert '"finish_reason": "stop"' in events[-2] and '"usage": {' in events[-1]
    with sdk(upstream) as client:
        chunks = list(client.chat.completions.create(model="nodone", messages=MESSAGES, stream=True))
    assert stream_text(chunks).endswith("at a time.")


def test_down_for_a_while_then_healthy(upstream: FaultyUpstream) -> None:
    upstream.set_rule("flappy", Fault.down(0.4))
    with sdk(upstream) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="flappy", messages=MESSAGES)
        assert info.value.status_code == 503
        time.sleep(0.5)
        assert client.chat.completions.create(model="flappy", messages=MESSAGES).model == "flappy"
    assert [r.fault for r in upstream.requests] == ["server_error", "ok"]


def test_down_until_an_instant(upstream: FaultyUpstream) -> None:
    upstream.set_rule("later", Fault.down_until(time.monotonic() + 60, during=Fault.rate_limit(retry_after=60)))
    upstream.set_rule("past", Fault.down_until(time.monotonic() - 1))
    with sdk(upstream) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="later", messages=MESSAGES)
        assert client.chat.completions.create(model="past", messages=MESSAGES).model == "past"


def test_rules_match_the_key_when_the_model_has_none(upstream: FaultyUpstream) -> None:
    upstream.set_rule("sk-fake-key-0001", Fault.server_error(503))
    with sdk(upstream) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="anything", messages=MESSAGES)
    [request] = upstream.requests
    assert request.rule == "sk-fake-key-0001" and request.model == "anything"
    assert upstream.count("sk-fake-key-0001") == upstream.count("anything") == 1
    azure = httpx.post(
        upstream.base_url + "/chat/completions",
        json={"messages": MESSAGES},
        headers={"api-key": "sk-fake-key-0001"},
    )
    assert azure.status_code == 503


def test_default_rule_and_unknown_routes() -> None:
    with FaultyUpstream(default=Fault.context_length()) as server:
        with sdk(server) as client, pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="x", messages=MESSAGES)
        assert httpx.get(server.url + "/nothing").status_code == 404
        assert httpx.post(server.base_url + "/chat/completions", content=b"{").status_code == 400


def test_models_lists_the_rules() -> None:
    with FaultyUpstream({"primary": Fault.ok(), "backup": Fault.ok()}) as server, sdk(server) as client:
        assert sorted(m.id for m in client.models.list()) == ["backup", "primary"]


def test_keep_alive_and_chunked_request_bodies(upstream: FaultyUpstream) -> None:
    def chunked() -> Iterator[bytes]:
        yield b'{"model": "chunky", '
        yield b'"messages": [{"role": "user", "content": "hi"}]}'

    with httpx.Client(timeout=5) as client:
        for _ in range(3):
            assert client.post(upstream.base_url + "/chat/completions", json={"messages": MESSAGES}).status_code == 200
        assert upstream.open_connections == 1  # one kept-alive connection served all three
        reply = client.post(upstream.base_url + "/chat/completions", content=chunked())
        assert reply.json()["model"] == "chunky"


def test_connections_are_released_after_faults(upstream: FaultyUpstream) -> None:
    upstream.set_rule("silent", Fault.hang())
    upstream.set_rule("stall", Fault.stall(1))
    with sdk(upstream, timeout=0.2) as client:
        for model in ("silent", "stall"):
            with pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model=model, messages=MESSAGES)
    deadline = time.monotonic() + 5
    while upstream.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert upstream.open_connections == 0


def test_stop_ends_hanging_requests_and_restart_is_refused_gracefully() -> None:
    server = FaultyUpstream({"silent": Fault.hang()}).start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        body = b'{"model": "silent", "messages": []}'
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        while not server.requests:
            time.sleep(0.01)
        server.stop()
        assert sock.recv(10) == b""  # closed by the stop, not left hanging
    assert "stopped" in repr(server)
    with pytest.raises(RuntimeError):
        _ = server.base_url


@pytest.mark.anyio
async def test_async_context_manager_with_the_async_sdk() -> None:
    async with (
        FaultyUpstream({"primary": [Fault.server_error(502), Fault.ok()]}) as server,
        openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-x", max_retries=0) as client,
    ):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="primary", messages=MESSAGES)
        with anyio.fail_after(5):
            stream = await client.chat.completions.create(model="primary", messages=MESSAGES, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text.startswith("This is a complete reply from primary")
        assert server.count("primary") == 2


def test_fault_reprs_are_readable() -> None:
    assert repr(Fault.ok()) == "Fault.ok()"
    assert repr(Fault.cut(2, reset=True)) == "Fault.cut(after_tokens=2, rst=True)"
    assert "status=429" in repr(Fault.rate_limit(retry_after=1))
    with pytest.raises(TypeError):
        FaultyUpstream({"x": ["not a fault"]})  # type: ignore[list-item]
    with pytest.raises(ValueError):
        FaultyUpstream({"x": []})
