"""The stream pass-through (``llm_factory_core._raw_sse``, ``server/_passthrough.py``): an OpenAI
upstream's plain chunks reach an OpenAI client byte for byte, with the streaming contract intact.

Over real sockets on both transports: the fake upstream (``serve_handler``) writes each SSE frame
as its own write, or several in one, exactly as scripted here."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from llm_factory_core import LLMFactory, ModelConfig, hookimpl
from llm_factory_core.providers import OpenAICompatibleProvider, PluginRegistry
from llm_factory_core.testing import serve_handler
from llm_factory_server import ServerSettings, create_app

from .helpers import ServerThread, gateway_over, serving_factory

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
BASE = {"id": "chatcmpl-pt1", "object": "chat.completion.chunk", "created": 1733300000, "model": "gpt-4o-2024-08-06"}


def event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    # OpenAI's own shape: nulls included, plus fields the gateway does not know (obfuscation).
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return event({**BASE, "system_fingerprint": "fp_1", "choices": [choice], "obfuscation": "x9", **extra})


ROLE = chunk({"role": "assistant", "content": "", "refusal": None})
HEL = chunk({"content": "Hel"})
LO = chunk({"content": "lo"})
STOP = chunk({}, "stop")
USAGE = event({**BASE, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
DONE = b"data: [DONE]\n\n"
ERROR = event({"error": {"message": "the model crashed", "type": "server_error", "param": None, "code": None}})


@contextmanager
def gateway(http_transport: str, writes: list[bytes], **settings: Any) -> Iterator[tuple[ServerThread, list[Any]]]:
    """The gateway over one upstream that answers every stream with ``writes`` (one write each)."""
    bodies: list[Any] = []

    async def frames() -> AsyncIterator[bytes]:
        for piece in writes:
            yield piece
            await asyncio.sleep(0.01)  # separate reads downstream, as a generating model's chunks are

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=frames())

    with gateway_over(handler, http_transport, **settings) as server:
        yield server, bodies


def stream(server: ServerThread, **extra: Any) -> httpx.Response:
    reply = httpx.post(f"{server.url}/v1/chat/completions", json={**BODY, **extra}, timeout=10)
    return reply


def test_plain_chunks_are_forwarded_byte_for_byte_and_done_once(http_transport: str) -> None:
    with gateway(http_transport, [ROLE, HEL, LO, STOP, DONE]) as (server, _):
        reply = stream(server)
    assert reply.status_code == 200
    assert reply.content == ROLE + HEL + LO + STOP + DONE
    assert reply.content.count(DONE) == 1


def test_events_arriving_together_are_forwarded_together_and_exactly(http_transport: str) -> None:
    with gateway(http_transport, [ROLE + HEL, LO + STOP + DONE]) as (server, _):
        reply = stream(server)
    assert reply.content == ROLE + HEL + LO + STOP + DONE


def _http_chunks(server: ServerThread) -> list[bytes]:
    """The response body's HTTP/1.1 chunks, as written: one per ``send`` of the gateway."""
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(BODY).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s:%s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (host.encode(), port.encode(), len(body), body)
        )
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end (keep-alive)
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert b"transfer-encoding: chunked" in data.split(b"\r\n\r\n", 1)[0].lower()
    rest = data.split(b"\r\n\r\n", 1)[1]
    out = []
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return out
        out.append(rest[:size])
        rest = rest[size + 2 :]


def test_events_read_together_are_written_together(http_transport: str) -> None:
    with gateway(http_transport, [ROLE + HEL, LO + STOP, DONE]) as (server, _):
        chunks = _http_chunks(server)
    assert chunks == [ROLE + HEL, LO + STOP, DONE]


def test_an_error_event_after_the_commit_ends_the_stream_with_it(http_transport: str) -> None:
    with gateway(http_transport, [ROLE, HEL, LO + ERROR]) as (server, _):
        reply = stream(server)
    assert reply.status_code == 200
    assert reply.content.startswith(ROLE + HEL + LO)  # the chunk read together with the error still counts
    last = reply.content.split(b"\n\n")[-2]
    assert json.loads(last.removeprefix(b"data: "))["error"]["message"].startswith(
        "the stream broke after it started: ServerError: the model crashed"
    )
    assert DONE not in reply.content


def test_an_error_event_before_any_content_is_an_ordinary_error_reply(http_transport: str) -> None:
    with gateway(http_transport, [ROLE, ERROR]) as (server, _):
        reply = stream(server)
    assert reply.status_code == 502  # the upstream's server error, as a gateway reports it
    assert "the model crashed" in reply.json()["error"]["message"]


def test_a_stream_cut_before_its_finish_ends_with_the_error_event(http_transport: str) -> None:
    with gateway(http_transport, [ROLE, HEL, LO]) as (server, _):
        reply = stream(server)
    assert reply.status_code == 200
    assert reply.content.startswith(ROLE + HEL + LO)
    last = reply.content.split(b"\n\n")[-2]
    assert "closed the stream before it finished" in json.loads(last.removeprefix(b"data: "))["error"]["message"]
    assert DONE not in reply.content


def test_a_finished_stream_without_done_is_complete(http_transport: str) -> None:
    with gateway(http_transport, [ROLE, HEL, STOP]) as (server, _):
        reply = stream(server)
    assert reply.content == ROLE + HEL + STOP + DONE


def test_usage_is_captured_and_sent_only_when_the_client_asked(
    http_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    writes = [ROLE, HEL, LO, STOP, USAGE, DONE]
    with gateway(http_transport, writes) as (server, bodies):
        asked = stream(server, stream_options={"include_usage": True})
        not_asked = stream(server)
    assert asked.content == ROLE + HEL + LO + STOP + USAGE + DONE
    # The gateway asked the upstream for usage (its records need it); its client did not get it.
    assert bodies[1]["stream_options"] == {"include_usage": True}
    assert not_asked.content == ROLE + HEL + LO + STOP + DONE
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]
    assert len(lines) == 2 and all("tokens=9/2" in line for line in lines), lines


def test_an_event_that_is_not_plain_takes_the_parsed_path(http_transport: str) -> None:
    # A later chunk under another id (and one with an unknown finish reason): rewritten exactly as
    # the parsed path does, to the stream's first id and a finish reason OpenAI defines.
    other = event({**BASE, "id": "chatcmpl-other", "choices": [{"index": 0, "delta": {"content": "lo"}}]})
    odd = chunk({}, "end_turn")
    with gateway(http_transport, [ROLE, HEL, other, odd, DONE]) as (server, _):
        reply = stream(server)
    events = reply.content.split(b"\n\n")
    assert reply.content.startswith(ROLE + HEL)
    rewritten = [json.loads(e.removeprefix(b"data: ")) for e in events[2:4]]
    assert [e["id"] for e in rewritten] == ["chatcmpl-pt1", "chatcmpl-pt1"]
    assert rewritten[0]["choices"][0]["delta"] == {"content": "lo"}
    assert rewritten[1]["choices"][0]["finish_reason"] == "stop"
    assert events[-2:] == [b"data: [DONE]", b""]


def test_a_missing_model_gets_the_deployments_model(http_transport: str) -> None:
    first = event(
        {
            **{k: v for k, v in BASE.items() if k != "model"},
            "model": "",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}],
        }
    )
    with gateway(http_transport, [first, DONE]) as (server, _):
        reply = stream(server)
    payload = json.loads(reply.content.split(b"\n\n")[0].removeprefix(b"data: "))
    assert payload["model"] == "gpt-4o" and payload["choices"][0]["delta"] == {"content": "Hi"}


def test_content_logging_sees_the_forwarded_text(http_transport: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    with gateway(http_transport, [ROLE, HEL, LO, STOP, DONE], log_content=True) as (server, _):
        reply = stream(server)
    assert reply.content == ROLE + HEL + LO + STOP + DONE
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]
    assert "reply='Hello'" in lines[0], lines


def test_an_event_cut_across_reads_crlf_and_keep_alive_comments(http_transport: str) -> None:
    # One event split over two writes, CRLF line endings, a keep-alive comment between events:
    # forwarded as the same events, normalised to LF framing.
    crlf = HEL.replace(b"\n", b"\r\n")
    with gateway(http_transport, [ROLE, crlf[:20], crlf[20:], b": keep-alive\n\n", LO, STOP, DONE]) as (server, _):
        reply = stream(server)
    assert reply.content == ROLE + HEL + LO + STOP + DONE


def test_data_without_a_space_is_forwarded_with_the_usual_framing(http_transport: str) -> None:
    tight = HEL.replace(b"data: ", b"data:")
    with gateway(http_transport, [ROLE, tight, STOP, DONE]) as (server, _):
        reply = stream(server)
    assert reply.content == ROLE + HEL + STOP + DONE


def test_tool_call_chunks_take_the_parsed_path_with_the_same_meaning(http_transport: str) -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tool = chunk({"tool_calls": [call]})
    with gateway(http_transport, [ROLE, tool, chunk({}, "tool_calls"), DONE]) as (server, _):
        reply = stream(server)
    events = [json.loads(e.removeprefix(b"data: ")) for e in reply.content.split(b"\n\n")[:-2]]
    assert events[1]["choices"][0]["delta"]["tool_calls"] == [call]
    assert events[1]["id"] == "chatcmpl-pt1" and events[2]["choices"][0]["finish_reason"] == "tool_calls"


class ParsedOnly(OpenAICompatibleProvider):
    """An OpenAI-compatible plugin that did not declare ``raw_sse``."""

    key = "parsed-only"
    default_api_base = None


class ParsedOnlyPlugin:
    @hookimpl
    def llm_factory_register_providers(self, register: Any) -> None:
        register(ParsedOnly)


@contextmanager
def serving_provider(
    http_transport: str, writes: bytes, provider: str, api_base: str = "", registry: Any = None
) -> Iterator[ServerThread]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=writes)

    with serve_handler(handler) as base:
        config = ModelConfig(provider=provider, model_name="gpt-4o", api_key="sk-up-0001", api_base=base + api_base)
        with serving_factory(http_transport, config, num_retries=0, registry=registry) as server:
            yield server


def test_a_provider_without_the_capability_keeps_the_parsed_path(http_transport: str) -> None:
    # Its adapt_chunk may change any chunk: never forwarded raw, so the reply is re-serialised
    # (OpenAI's nulls left out), with the same content.
    registry = PluginRegistry(entry_points=False)
    registry.register(ParsedOnlyPlugin(), origin="tests")
    with serving_provider(http_transport, ROLE + HEL + STOP + DONE, "parsed-only", registry=registry) as server:
        reply = stream(server)
    events = [json.loads(e.removeprefix(b"data: ")) for e in reply.content.split(b"\n\n")[:-2]]
    assert [e["choices"][0]["delta"].get("content") for e in events] == ["", "Hel", None]
    assert b"null" not in reply.content and reply.content.endswith(DONE)


@pytest.mark.parametrize("client_asks_usage", [True, False])
def test_deepseek_passes_plain_chunks_and_moves_its_usage_to_a_chunk_of_its_own(
    http_transport: str, client_asks_usage: bool
) -> None:
    # DeepSeek puts the usage on its finish chunk, in its own fields (tests/plugins/deepseek/
    # fake_deepseek.py): that one event takes the parsed path, which splits it as OpenAI sends it
    # and adds OpenAI's cached_tokens; every other chunk is DeepSeek's bytes.
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11, "prompt_cache_hit_tokens": 4}
    thinking = chunk({"content": None, "reasoning_content": "Hmm"})
    finish = event({**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage})
    extra = {"stream_options": {"include_usage": True}} if client_asks_usage else {}
    with serving_provider(http_transport, ROLE + thinking + HEL + finish + DONE, "deepseek") as server:
        reply = stream(server, **extra)
    assert reply.content.startswith(ROLE + thinking + HEL)
    events = [json.loads(e.removeprefix(b"data: ")) for e in reply.content.split(b"\n\n")[3:-2]]
    assert events[0]["choices"][0]["finish_reason"] == "stop" and "usage" not in events[0]
    if client_asks_usage:
        assert events[1]["choices"] == [] and events[1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert len(events) == (2 if client_asks_usage else 1) and reply.content.endswith(DONE)


def test_qwen_compatible_mode_passes_plain_chunks_and_fixes_up_its_usage(http_transport: str) -> None:
    # DashScope's compatible mode reports explicit-cache writes in prompt_tokens_details; the
    # usage event takes the parsed path, which adds OpenAI's cache_write_tokens beside it.
    details = {"cached_tokens": 0, "cache_creation_input_tokens": 5}
    usage = event(
        {
            **BASE,
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11, "prompt_tokens_details": details},
        }
    )

    def handler(request: httpx.Request) -> httpx.Response:
        content = ROLE + HEL + STOP + usage + DONE
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)

    with serve_handler(handler) as base:
        config = ModelConfig(
            provider="qwen", model_name="gpt-4o", api_key="sk-up-0001", api_base=f"{base}/compatible-mode/v1"
        )
        factory = LLMFactory([config], transport=http_transport, num_retries=0)
        server = ServerThread(create_app(factory, settings=ServerSettings())).start()
        try:
            reply = stream(server, stream_options={"include_usage": True})
        finally:
            server.stop()
            factory.close()
    assert reply.content.startswith(ROLE + HEL + STOP)
    last = json.loads(reply.content.split(b"\n\n")[-3].removeprefix(b"data: "))
    assert last["usage"]["prompt_tokens_details"] == {**details, "cache_write_tokens": 5}
    assert reply.content.endswith(DONE)
