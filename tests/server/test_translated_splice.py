"""A translated provider's stream through the gateway (Gemini's wire format, decoded per read by
its ``ChunkDecoder``): the same chunks on every path, and, once committed, spliced like the
pass-through (on aiohttp; httpx takes the generator path), over real sockets.

The upstream writes Gemini's ``streamGenerateContent?alt=sse`` events as the fake in
``tests/plugins/gemini/fake_gemini.py`` models them (``\\r\\n\\r\\n`` between events, cumulative
``usageMetadata``, ``finishReason`` on the last, a mid-stream error as a raw JSON object)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("llm_factory_gemini")

from llm_factory_core import ModelConfig

from .conftest import SplicePath as Path
from .helpers import ServerThread, serving_factory
from .test_splice import LIVENESS, Upstream, access_lines, stream_of

BODY = {"model": "gemini-3-pro", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def gem(text: str, n: int, finish: str | None = None) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 7, "candidatesTokenCount": n, "totalTokenCount": 7 + n}
    event = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-3-pro", "responseId": "r1"}
    return b"data: " + json.dumps(event).encode() + b"\r\n\r\n"


WORDS = [gem("Hel", 1), gem("lo", 2), gem(" there", 3), gem("!", 4, "STOP")]
ERROR = json.dumps(
    {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}, indent=2
)


@contextlib.contextmanager
def gateway(http_transport: str, upstream: Upstream, **deployment: Any) -> Iterator[ServerThread]:
    """The gateway over ``upstream`` with one deployment (Gemini's unless ``deployment`` says)."""
    fields = {"provider": "gemini", "model_name": "gemini-3-pro", "api_key": "gk-up-0001", **deployment}
    with upstream.raw as raw:
        config = ModelConfig(**fields, api_base=raw.url)
        with serving_factory(http_transport, config, num_retries=0, cooldown=0.0) as server:
            yield server


def post(server: ServerThread, **extra: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json={**BODY, **extra}, timeout=LIVENESS)


def events(content: bytes) -> list[Any]:
    return [json.loads(e.removeprefix(b"data: ")) for e in content.split(b"\n\n") if e and e != b"data: [DONE]"]


def text_of(content: bytes) -> str:
    return "".join(c["delta"].get("content") or "" for e in events(content) for c in e.get("choices", []))


@pytest.mark.parametrize(
    "writes",
    [WORDS, [b"".join(WORDS)], [w[i : i + 7] for w in WORDS for i in range(0, len(w), 7)]],
    ids=["a-read-each", "one-read", "split-reads"],
)
def test_the_chunks_are_the_same_however_the_reads_fall(http_transport: str, path: Path, writes: list[bytes]) -> None:
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [WORDS[0], *writes[1:]] if writes is WORDS else writes, pause=0.01))
    with gateway(http_transport, upstream) as server:
        reply = post(server, stream_options={"include_usage": True})
    assert reply.status_code == 200 and reply.content.endswith(b"data: [DONE]\n\n")
    found = events(reply.content)
    assert text_of(reply.content) == "Hello there!"
    assert len({e["id"] for e in found}) == 1 and len({e["created"] for e in found}) == 1
    assert found[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["finish_reason"] for e in found for c in e["choices"] if c.get("finish_reason")] == ["stop"]
    assert found[-1]["choices"] == [] and found[-1]["usage"]["completion_tokens"] == 4
    if writes is WORDS:
        path.took_the_splice()  # committed at the first read, the rest spliced (aiohttp)


def test_the_usage_chunk_is_recorded_and_sent_only_when_asked(
    http_transport: str, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, WORDS))
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert text_of(reply.content) == "Hello there!" and all(e["choices"] for e in events(reply.content))
    assert any("tokens=7/4" in line for line in access_lines(caplog)), access_lines(caplog)
    path.took_the_splice()


def test_an_error_object_mid_stream_ends_the_reply_with_an_error_event(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [WORDS[0], WORDS[1], ERROR.encode() + b"\n"]))
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert text_of(reply.content) == "Hello" and b"[DONE]" not in reply.content
    last = events(reply.content)[-1]
    assert "An internal error has occurred." in last["error"]["message"], last
    path.took_the_splice()


def test_a_stream_cut_before_its_finish_ends_with_an_error_event(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, WORDS[:2]))  # the body ends without a finish reason
    with gateway(http_transport, upstream) as server:
        reply = post(server)
    assert text_of(reply.content) == "Hello" and b"[DONE]" not in reply.content
    assert "closed the stream before it finished" in events(reply.content)[-1]["error"]["message"]
    path.took_the_splice()


# -- Claude on Anthropic's API (SSE): the same, through the Claude plugin's ``ChunkDecoder`` ---------


def anthropic(kind: str, **data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps({"type": kind, **data}).encode() + b"\n\n"


def claude_text(text: str) -> bytes:
    return anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": text})


MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": []}
CLAUDE_START = [
    anthropic("message_start", message={**MESSAGE, "usage": {"input_tokens": 7, "output_tokens": 1}}),
    anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""}),
]
CLAUDE_END = [
    anthropic("content_block_stop", index=0),
    anthropic("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 3}),
    anthropic("message_stop"),
]


def claude_gateway(http_transport: str, upstream: Upstream) -> Any:
    pytest.importorskip("llm_factory_claude")
    claude = {"provider": "claude", "model_name": "claude", "model": "claude-sonnet-4-5", "mode": "anthropic"}
    return gateway(http_transport, upstream, **claude, api_key="sk-ant-up-0001")


def test_a_claude_stream_is_spliced_with_the_same_chunks(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    texts = [claude_text(t) for t in ("Hel", "lo", "!")]
    upstream.scripts.append(stream_of(upstream, [b"".join(CLAUDE_START) + texts[0], *texts[1:], *CLAUDE_END]))
    with claude_gateway(http_transport, upstream) as server:
        reply = post(server, model="claude", stream_options={"include_usage": True})
    assert text_of(reply.content) == "Hello!" and reply.content.endswith(b"data: [DONE]\n\n")
    found = events(reply.content)
    assert [c["finish_reason"] for e in found for c in e["choices"] if c.get("finish_reason")] == ["stop"]
    assert found[-1]["usage"]["prompt_tokens"] == 7 and found[-1]["usage"]["completion_tokens"] == 3
    path.took_the_splice()


def test_a_claude_error_event_after_the_commit_ends_the_reply_with_it(http_transport: str, path: Path) -> None:
    upstream = Upstream()
    error = anthropic("error", error={"type": "overloaded_error", "message": "Overloaded"})
    upstream.scripts.append(
        stream_of(upstream, [b"".join(CLAUDE_START) + claude_text("Hel"), claude_text("lo") + error])
    )
    with claude_gateway(http_transport, upstream) as server:
        reply = post(server, model="claude")
    assert text_of(reply.content) == "Hello" and b"[DONE]" not in reply.content  # "lo" came before the error
    assert "Overloaded" in events(reply.content)[-1]["error"]["message"]
    path.took_the_splice()


# -- Qwen's native mode (DashScope SSE) -----------------------------------------------------------


def dashscope(n: int, text: str, finish: str = "null") -> bytes:
    data = {
        "output": {"choices": [{"message": {"content": text, "role": "assistant"}, "finish_reason": finish}]},
        "usage": {"input_tokens": 5, "output_tokens": n, "total_tokens": 5 + n},
        "request_id": "r-1",
    }
    return b"id:%d\nevent:result\n:HTTP_STATUS/200\ndata:%s\n\n" % (n, json.dumps(data).encode())


def test_a_qwen_native_stream_is_spliced_with_the_same_chunks(http_transport: str, path: Path) -> None:
    pytest.importorskip("llm_factory_qwen")
    upstream = Upstream()
    upstream.scripts.append(stream_of(upstream, [dashscope(1, "Hel"), dashscope(2, "lo"), dashscope(3, "!", "stop")]))
    qwen = {"provider": "qwen", "model_name": "qwen", "model": "qwen3-max", "mode": "native"}
    with gateway(http_transport, upstream, **qwen, api_key="sk-up-0001") as server:
        reply = post(server, model="qwen", stream_options={"include_usage": True})
    assert text_of(reply.content) == "Hello!" and reply.content.endswith(b"data: [DONE]\n\n")
    found = events(reply.content)
    assert [c["finish_reason"] for e in found for c in e["choices"] if c.get("finish_reason")] == ["stop"]
    assert found[-1]["usage"]["completion_tokens"] == 3
    path.took_the_splice()
