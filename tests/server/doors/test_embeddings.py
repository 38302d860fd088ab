"""``POST /v1/embeddings`` through the official openai SDK: an openai deployment (served by the
validated fake on 127.0.0.1) with the SDK's default base64 and with floats, ``dimensions``, failover
between two deployments, a chat-only provider under the model name, and bad input."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import serve_handler

from ...plugins.openai.fake_embeddings import vector_for
from ...plugins.openai.fake_openai import FakeOpenAI
from ..conftest import Serve
from ..helpers import ServerThread, client

UPSTREAM_KEY = "sk-embeddings-upstream-0001"
MODEL = "text-embedding-3-small"


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def fake_url(fake: FakeOpenAI) -> Iterator[str]:
    with serve_handler(fake) as url:
        yield url + "/v1"


def embedding_deployment(api_base: str, name: str = "emb-a", **extra: Any) -> ModelConfig:
    return ModelConfig(
        provider="openai", model_name="embed", model=MODEL, api_key=UPSTREAM_KEY, api_base=api_base, name=name, **extra
    )


def gateway(serve: Serve, transport: str, *configs: ModelConfig, **router: Any) -> ServerThread:
    router.setdefault("num_retries", 0)
    router.setdefault("cooldown", 0.0)
    return serve(LLMFactory(list(configs), transport=transport, **router))


def test_sdk_default_base64(serve: Serve, http_transport: str, fake: FakeOpenAI, fake_url: str) -> None:
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    reply = client(server).embeddings.create(model="embed", input=["hello world", "bye"])
    # The SDK asked the gateway for base64 and decoded it; upstream was asked for floats.
    assert [d.embedding for d in reply.data] == [vector_for("hello world", 1536), vector_for("bye", 1536)]
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.model == MODEL and reply.object == "list"
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (3, 3)
    assert fake.requests[0].body["encoding_format"] == "float"
    assert fake.requests[0].key == UPSTREAM_KEY


def test_base64_on_the_wire_is_little_endian_float32(serve: Serve, http_transport: str, fake_url: str) -> None:
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    body = {"model": "embed", "input": "hello", "encoding_format": "base64"}
    reply = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=10).json()
    packed = reply["data"][0]["embedding"]
    assert isinstance(packed, str)
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector_for("hello", 1536)


def test_float_format_and_dimensions(serve: Serve, http_transport: str, fake: FakeOpenAI, fake_url: str) -> None:
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    reply = client(server).embeddings.create(model="embed", input="hello", dimensions=256, encoding_format="float")
    assert reply.data[0].embedding == vector_for("hello", 256)
    assert fake.requests[0].body["dimensions"] == 256
    raw = httpx.post(
        f"{server.url}/v1/embeddings",
        json={"model": "embed", "input": "hello", "encoding_format": "float"},
        timeout=10,
    ).json()
    assert isinstance(raw["data"][0]["embedding"], list)


def test_fails_over_to_the_second_deployment(
    serve: Serve, http_transport: str, fake: FakeOpenAI, fake_url: str
) -> None:
    fake.push("server_error")
    server = gateway(
        serve,
        http_transport,
        embedding_deployment(fake_url, name="first"),
        embedding_deployment(fake_url, name="second"),
        strategy="first_available",
    )
    reply = client(server).embeddings.create(model="embed", input=["x"], encoding_format="float")
    assert reply.data[0].embedding == vector_for("x", 1536)
    assert len(fake.requests) == 2


def test_an_upstream_rate_limit_is_a_429(serve: Serve, http_transport: str, fake: FakeOpenAI, fake_url: str) -> None:
    fake.push("rate_limit", retry_after="30")
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    with pytest.raises(openai.RateLimitError) as info:
        client(server).embeddings.create(model="embed", input=["x"])
    assert UPSTREAM_KEY not in str(info.value.body)


def test_a_chat_only_provider_answers_a_clear_400(serve: Serve, http_transport: str) -> None:
    deepseek = ModelConfig(
        provider="deepseek", model_name="embed", model="deepseek-chat", api_key="sk-deepseek-0001", name="ds"
    )
    server = gateway(serve, http_transport, deepseek)
    with pytest.raises(openai.BadRequestError) as info:
        client(server).embeddings.create(model="embed", input=["x"])
    assert info.value.status_code == 400
    assert "does not serve embeddings" in info.value.message
    assert "deepseek" in info.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "embed", "input": ""}, "input"),
        ({"model": "embed", "input": []}, "input"),
        ({"model": "embed"}, "input"),
        ({"model": "embed", "input": ["x"] * 2049}, "2048"),
        ({"model": "embed", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "embed", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
    ids=["empty-string", "empty-list", "missing", "over-2048", "dimensions-0", "bad-format"],
)
def test_bad_input_is_a_400(
    serve: Serve, http_transport: str, fake: FakeOpenAI, fake_url: str, body: dict[str, Any], fragment: str
) -> None:
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    reply = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=10)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert fragment in error["message"] or fragment in str(error.get("param")), error
    assert fake.requests == [], "a bad request never reaches the upstream"


def test_the_sdk_raises_bad_request_for_empty_input(serve: Serve, http_transport: str, fake_url: str) -> None:
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    with pytest.raises(openai.BadRequestError):
        client(server).embeddings.create(model="embed", input="")


def test_an_unknown_model_is_a_404(serve: Serve, http_transport: str, fake_url: str) -> None:
    server = gateway(serve, http_transport, embedding_deployment(fake_url))
    with pytest.raises(openai.NotFoundError):
        client(server).embeddings.create(model="no-such-model", input="x")
