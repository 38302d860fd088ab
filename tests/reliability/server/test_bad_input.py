"""Bad input to the gateway: property-based fuzzing (schemathesis, from the gateway's own OpenAPI
schema, and from the chat completion request schema) and hand-made abuse: oversized bodies, deep
nesting, invalid UTF-8, thousands of messages, odd model names. Every reply is a clear 4xx (or a
normal answer) in OpenAI's error envelope, never a 5xx, never a hang, and the server stays up.

Fuzzing is bounded (``max_examples``) so the whole file runs in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from llm_factory_core import ChatRequest
from llm_factory_core.testing import FaultyUpstream
from tests.server.helpers import ServerThread

from ..conftest import make_factory
from .conftest import LOOP, Reply, app_closing, parse_sse

FUZZ = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True
)
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def gateway() -> Iterator[ServerThread]:
    """One gateway for the whole module (fuzzing must not pay a start-up per example), healthy
    upstream, small body limit."""
    with FaultyUpstream() as upstream:
        factory = make_factory(upstream.base_url)
        server = ServerThread(app_closing(factory, max_body_bytes=MAX_BODY), loop=LOOP).start()
        try:
            yield server
        finally:
            server.stop()
            factory.close()


@pytest.fixture(scope="module")
def client(gateway: ServerThread) -> Iterator[httpx.Client]:
    # JSON bodies: the open gateway refuses other content types (415, tests/security/test_gateway_hardening.py)
    with httpx.Client(base_url=gateway.url, timeout=10.0, headers={"content-type": "application/json"}) as http:
        yield http


def assert_envelope(response: httpx.Response, *, anthropic: bool = False) -> dict[str, Any]:
    """OpenAI's error envelope; Anthropic's on the /v1/messages door (its clients parse that one)."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    data = response.json()
    error = data["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if anthropic:
        assert data["type"] == "error"
    else:
        assert "param" in error and "code" in error
    return dict(error)


def assert_clear(response: httpx.Response, *, chat: bool = True, anthropic: bool = False) -> None:
    """A normal reply, or a 4xx in the door's error envelope; never a 5xx."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert_envelope(response, anthropic=anthropic)
    elif response.headers["content-type"].startswith("text/event-stream"):
        reply = Reply(200)
        parse_sse(reply, response.text)
        assert reply.done and reply.error is None
    elif chat:
        assert response.json()["choices"]
    else:
        assert isinstance(response.json(), dict)


def assert_still_up(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200 and response.json()["model"] == "primary"


# -- schemathesis -----------------------------------------------------------------------------------


def test_the_openapi_schema_describes_chat_completions(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert "messages" in body["properties"] and "messages" in body["required"]


def _own_operations(client: httpx.Client) -> list[Any]:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_fuzz_the_gateway_from_its_own_openapi_schema(client: httpx.Client, mode: GenerationMode) -> None:
    operations = _own_operations(client)
    assert {op.path for op in operations} >= {"/v1/models", "/v1/providers/status", "/v1/chat/completions"}

    @FUZZ
    @given(st.sampled_from(operations).flatmap(lambda op: op.as_strategy(generation_mode=mode)))
    def check(case: Any) -> None:
        body = getattr(case, "body", None)
        is_chat = case.path == "/v1/chat/completions"
        content = None
        if is_chat and not isinstance(body, NotSet):
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.request(
            case.method,
            case.formatted_path,
            params=case.query,
            headers={k: str(v) for k, v in (case.headers or {}).items()},
            content=content,
        )
        assert_clear(response, chat=is_chat, anthropic=case.path.startswith("/v1/messages"))

    check()
    assert_still_up(client)


def _chat_schema() -> dict[str, Any]:
    """An OpenAPI document for POST /v1/chat/completions straight from the request model (the
    served schema is fuzzed too, above)."""
    body = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = body.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "llm-factory gateway", "version": "1"},
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
                    },
                    "responses": {"200": {"description": "a completion or an SSE stream"}},
                }
            }
        },
        "components": {"schemas": {"ChatRequest": body, **defs}},
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_fuzz_chat_completions_from_the_request_schema(client: httpx.Client, mode: GenerationMode) -> None:
    operation = schemathesis.openapi.from_dict(_chat_schema())["/v1/chat/completions"]["POST"]

    @FUZZ
    @given(operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        response = client.post("/v1/chat/completions", content=raw)
        assert_clear(response)

    check()
    assert_still_up(client)


@pytest.mark.parametrize(
    "extra",
    [{"seed": 2**64}, {"metadata": {"n": -(2**70)}}, {"extra_body": {"top_k": 10**30}}],
    ids=["seed", "extra", "extra_body"],
)
def test_a_huge_integer_is_a_clear_400(client: httpx.Client, extra: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    response = client.post("/v1/chat/completions", content=json.dumps(body).encode())
    assert response.status_code == 400, response.text
    assert_envelope(response)


# -- hand-made abuse --------------------------------------------------------------------------------


def test_an_oversized_body_is_413(client: httpx.Client) -> None:
    big = {"messages": [{"role": "user", "content": "x" * (MAX_BODY + 1)}]}
    response = client.post("/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert assert_envelope(response)["code"] == "request_too_large"


def test_an_oversized_chunked_body_without_length_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"x" * 4096
        yield b'"}]}'

    response = client.post("/v1/chat/completions", content=chunks())
    assert response.status_code == 413
    assert_envelope(response)
    assert_still_up(client)


@pytest.mark.parametrize("depth", [100, 5_000])
def test_deeply_nested_json_is_a_clear_400(client: httpx.Client, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = '{"messages": [{"role": "user", "content": "hi"}], "extra_body": {"x": ' + nested + "}}"
    response = client.post("/v1/chat/completions", content=body.encode())
    assert_clear(response)
    deep_messages = '{"messages": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/v1/chat/completions", content=deep_messages.encode())
    assert response.status_code == 400
    assert_envelope(response)
    assert_still_up(client)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": [{"role": "user", "content": "\xff\xfe bad"}]}',
        b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',  # an encoded surrogate
        b"\xef\xbb\xbf{}",
        b"",
        b"null",
        b"[]",
        b'{"messages": "not a list"}',
        b'{"messages": [{"role": "user", "content": "\\ud800"}]}',  # a lone surrogate escape
    ],
)
def test_invalid_bytes_and_shapes_are_a_clear_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.status_code == 400
        assert_envelope(response)


def test_thousands_of_messages(client: httpx.Client) -> None:
    messages = [{"role": "user" if i % 2 else "assistant", "content": f"message {i}"} for i in range(10_000)]
    response = client.post("/v1/chat/completions", json={"messages": messages})
    assert_clear(response)
    assert response.status_code == 200  # within the body limit: answered


ODD_MODELS = [
    "模型-🚀",
    "x" * 10_000,
    "../../etc/passwd",
    "/v1/models",
    "primary/../backup",
    "\n\t",
    "\x00",
    "%2e%2e",
    " ",
]


@pytest.mark.parametrize("model", ODD_MODELS, ids=lambda m: repr(m[:20]))
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_odd_model_names_are_a_clear_404(client: httpx.Client, model: str, stream: bool) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 404, response.text[:300]
    assert assert_envelope(response)["code"] == "model_not_found"
    response = client.get("/v1/models/" + quote(model, safe=""))
    assert response.status_code == 404
    assert_envelope(response)


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_an_empty_model_name_is_a_clear_400(client: httpx.Client, stream: bool) -> None:
    body = {"model": "", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text[:300]
    assert_envelope(response)
