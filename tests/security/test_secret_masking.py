"""No secret ever reaches a client or a log (issue 20, "Deliver 1"), for every provider and kind of credential.

A hostile upstream echoes every request header, the URL and the body into every field of its
error (message, code/type/status, param): as an HTTP error reply, as an HTTP error answering a
stream request, and as an error event in the middle of a stream that already sent content. For
every provider and every kind of credential (configured keys and tokens, configured headers,
environment fallbacks, AWS keys resolved by botocore's chain, SigV4 signatures), nothing of a
secret may show in the library's exceptions and tracebacks, ``factory.status()``, any log
record, or the gateway's JSON error bodies, SSE error events, status page and metrics.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from llm_factory_core import LLMFactory, LLMFactoryError, ModelConfig
from llm_factory_core.testing import serve_handler
from llm_factory_server import ServerSettings, create_app

from ..server.helpers import ServerThread
from .conftest import all_log_text

# Hex bodies: an 8-character piece of one cannot occur by chance in what the gateway says.
S1 = "0f3a9c1be77d4e52a1c6d08b93e4f7a2"
S2 = "5d1e8b0c4a7f4396b2e1c0d9f8a7b6c5e4d3"
S3 = "9a8b7c6d5e4f40312233445566778899aabb"
ACCESS_KEY_ID = "TESTKEYID7C2E9A4B1D8F"  # not AKIA-shaped: the provider must know it, not guess it

MODES = ("reply", "status", "event")
"""reply: a non-streamed call answered by an HTTP error; status: a stream request answered by an
HTTP error; event: a stream that sends content, then an error event."""

_SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")


def _echo(request: httpx.Request) -> str:
    headers = "; ".join(f"{name}: {value}" for name, value in request.headers.multi_items())
    return f"{request.method} {request.url} | {headers} | {request.content.decode('utf-8', 'replace')}"


def _sse(*events: tuple[str | None, Any]) -> bytes:
    out = ""
    for name, data in events:
        out += (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
    return out.encode()


# -- what each upstream family answers -------------------------------------------------------------


def _openai(request: httpx.Request, mode: str, echo: str) -> httpx.Response:
    error = {"error": {"message": echo, "type": echo, "param": echo, "code": echo}}
    if mode != "event":
        return httpx.Response(401, json=error)
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}],
    }
    return httpx.Response(
        200, content=_sse((None, chunk), (None, error)), headers={"content-type": "text/event-stream"}
    )


def _qwen_native(request: httpx.Request, mode: str, echo: str) -> httpx.Response:
    error = {"code": echo, "message": echo, "param": echo, "request_id": "r1"}
    if mode != "event":
        return httpx.Response(401, json=error)
    result = {
        "output": {"choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "null"}]},
        "request_id": "r1",
    }
    body = _sse(("result", result), ("error", error))
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def _anthropic(request: httpx.Request, mode: str, echo: str) -> httpx.Response:
    error = {"type": "error", "error": {"type": echo, "message": echo}}
    if mode != "event":
        return httpx.Response(401, json=error)
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
    }
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    body = _sse(
        ("message_start", start), ("content_block_start", block), ("content_block_delta", delta), ("error", error)
    )
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def _bedrock(request: httpx.Request, mode: str, echo: str) -> httpx.Response:
    from tests.plugins.claude.fake_claude import chunk_frame, exception_frame

    code = echo.replace(":", " ").replace("#", " ")  # an AWS code ends at the first ':' or '#'
    if mode != "event":
        return httpx.Response(403, json={"__type": code, "message": echo, "Message": echo})
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    ]
    body = b"".join(chunk_frame(e) for e in events) + exception_frame("x" + code, echo)
    return httpx.Response(200, content=body, headers={"content-type": "application/vnd.amazon.eventstream"})


def _gemini(request: httpx.Request, mode: str, echo: str) -> httpx.Response:
    error = {"error": {"code": 401, "message": echo, "status": echo}}
    if mode != "event":
        return httpx.Response(401, json=error)
    chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}]}
    error["error"]["code"] = 500
    return httpx.Response(
        200, content=_sse((None, chunk), (None, error)), headers={"content-type": "text/event-stream"}
    )


# -- the cases: one per provider and kind of credential --------------------------------------------


@dataclass
class Case:
    name: str
    answer: Callable[[httpx.Request, str, str], httpx.Response]
    config: Callable[[str], dict[str, Any]]
    """api_base -> the deployment's fields (provider, key, headers...)."""
    secrets: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case(
        "openai-key-and-headers",
        _openai,
        lambda base: {"provider": "openai", "api_base": base, "api_key": "sk-" + S1, "headers": {"x-tenant-token": S2}},
        ("sk-" + S1, S2),
    ),
    Case(
        "azure-api-key",
        _openai,
        lambda base: {
            "provider": "openai",
            "api_base": base,
            "api_version": "2024-10-21",
            "api_key": S1,
            "headers": {"x-ms-client-secret": S2},
        },
        (S1, S2),
    ),
    Case(
        "azure-ad-token",
        _openai,
        lambda base: {"provider": "openai", "api_base": base, "api_version": "2024-10-21", "azure_ad_token": S1},
        (S1,),
    ),
    Case("deepseek", _openai, lambda base: {"provider": "deepseek", "api_base": base, "api_key": "sk-" + S1}, (S1,)),
    Case(
        "qwen-native",
        _qwen_native,
        lambda base: {"provider": "qwen", "mode": "native", "api_base": base, "api_key": "sk-" + S1},
        (S1,),
    ),
    Case(
        "qwen-compatible",
        _openai,
        lambda base: {"provider": "qwen", "mode": "compatible", "api_base": base, "api_key": "sk-" + S1},
        (S1,),
    ),
    Case(
        "anthropic-key",
        _anthropic,
        lambda base: {"provider": "claude", "mode": "anthropic", "api_base": base, "api_key": "sk-ant-" + S1},
        (S1,),
    ),
    Case(
        "anthropic-env-key",
        _anthropic,
        lambda base: {"provider": "claude", "mode": "anthropic", "api_base": base},
        (S1,),
        {"ANTHROPIC_API_KEY": "sk-ant-" + S1},
    ),
    Case(
        "bedrock-access-keys",
        _bedrock,
        lambda base: {
            "provider": "claude",
            "mode": "bedrock",
            "api_base": base,
            "aws_region": "us-east-1",
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": S1,
            "aws_session_token": S2,
        },
        (ACCESS_KEY_ID, S1, S2),
    ),
    Case(
        "bedrock-api-key",
        _bedrock,
        lambda base: {
            "provider": "claude",
            "mode": "bedrock",
            "api_base": base,
            "aws_region": "us-east-1",
            "api_key": S1,
        },
        (S1,),
    ),
    Case(
        "bedrock-env-api-key",
        _bedrock,
        lambda base: {"provider": "claude", "mode": "bedrock", "api_base": base, "aws_region": "us-east-1"},
        (S1,),
        {"AWS_BEARER_TOKEN_BEDROCK": S1},
    ),
    Case(
        "bedrock-env-credential-chain",
        _bedrock,
        lambda base: {"provider": "claude", "mode": "bedrock", "api_base": base, "aws_region": "us-east-1"},
        (ACCESS_KEY_ID, S1, S3),
        {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": S1, "AWS_SESSION_TOKEN": S3},
    ),
    Case("gemini-key", _gemini, lambda base: {"provider": "gemini", "api_base": base, "api_key": "AIza" + S1}, (S1,)),
    Case(
        "gemini-vertex-token",
        _gemini,
        lambda base: {
            "provider": "gemini",
            "api_base": base,
            "vertex_project": "proj",
            "access_token": "ya29." + S1,
            "headers": {"x-goog-extra-credential": S2},
        },
        (S1, S2),
    ),
]


class Hostile:
    """The echoing upstream; it remembers the SigV4 signatures it saw (secrets too)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.signatures: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.signatures.update(_SIGNATURE.findall(request.headers.get("authorization", "")))
        text = str(request.url) + request.content.decode("utf-8", "replace")
        mode = next(m for m in MODES if f"echo-{m}" in text)
        return self.case.answer(request, mode, _echo(request))


def _pieces(secret: str) -> set[str]:
    return {secret[i : i + 8] for i in range(len(secret) - 7)}


def _leaks(where: str, text: str, secrets: set[str]) -> list[str]:
    return [f"{where}: {secret[:4]}..." for secret in secrets if any(p in text for p in _pieces(secret))]


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """No developer credential or AWS file may take part."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "QWEN_", "DEEPSEEK_", "CLAUDE_", "LLM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def _factory(case: Case, base: str, transport: str) -> LLMFactory:
    configs = [
        ModelConfig(model_name=f"m-{mode}", model=f"echo-{mode}", **case.config(base))  # type: ignore[arg-type]
        for mode in MODES
    ]
    return LLMFactory(configs, transport=transport, num_retries=0)


def _library_texts(f: LLMFactory) -> Iterator[tuple[str, str]]:
    """Every mode through the library: the exception's str, repr, fields and traceback."""
    for mode in MODES:
        with pytest.raises(LLMFactoryError) as info:
            if mode == "reply":
                f.chat("hi", model=f"m-{mode}")
            else:
                with f.stream("hi", model=f"m-{mode}") as chunks:
                    for _ in chunks:
                        pass
        exc = info.value
        yield f"library {mode} str", str(exc)
        yield f"library {mode} repr", repr(exc)
        yield f"library {mode} traceback", "".join(traceback.format_exception(exc))
        errors = [a.error for a in getattr(exc, "attempts", [])] or [exc]
        for error in errors:
            fields = (error.message, error.code, error.param, repr(error), str(error))
            yield f"library {mode} error fields", " ".join(str(v) for v in fields)


def _server_texts(f: LLMFactory) -> Iterator[tuple[str, str]]:
    server = ServerThread(create_app(f, settings=ServerSettings())).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for mode in MODES:
                body = {
                    "model": f"m-{mode}",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": mode != "reply",
                }
                response = http.post("/v1/chat/completions", json=body)
                yield f"server {mode} reply", str(response.headers) + response.text
                assert "error" in response.text, f"{mode}: {response.text[:300]}"
            for path in ("/v1/providers/status", "/metrics", "/v1/models"):
                response = http.get(path)
                yield f"server {path}", response.text
    finally:
        server.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_secret_reaches_a_client_or_a_log(
    case: Case, http_transport: str, isolated_env: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture
) -> None:
    for name, value in case.env.items():
        isolated_env.setenv(name, value)
    hostile = Hostile(case)
    texts: list[tuple[str, str]] = []
    with serve_handler(hostile) as base, _factory(case, base, http_transport) as f:
        texts += _library_texts(f)
        texts += _server_texts(f)
        texts.append(("factory.status()", json.dumps([s.model_dump(mode="json") for s in f.status()])))
        status = {s.model_name: s for s in f.status()}
    assert status["m-reply"].state == "disabled" and status["m-reply"].reason  # the echo reached the status
    for line in all_log_text(debug_logs).splitlines():
        texts.append(("log", line))
    assert "attempt failed" in all_log_text(debug_logs)  # the failures were logged (INFO)
    secrets = set(case.secrets) | hostile.signatures
    assert hostile.signatures or (not case.name.startswith("bedrock-access") and "chain" not in case.name)
    leaks = [leak for where, text in texts for leak in _leaks(where, text, secrets)]
    assert not leaks, leaks
    # The echo did arrive (masked): the test would see a leak if masking failed.
    assert any("****" in text for where, text in texts if where.startswith("server") and "reply" in where)
