"""Embeddings in the openai plugin, against the fake (validated with the openai SDK in
``test_fake_with_sdk``): OpenAI, Azure classic and Azure v1 URLs and auth, ``dimensions``,
``encoding_format``, batches within the API's limit merged in order, errors and failover. Everything
runs over real sockets on both HTTP transports."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    EmbeddingRequest,
    InsufficientQuotaError,
    LLMFactory,
    ModelConfig,
    ProviderError,
    RateLimitError,
    ServerError,
)
from llm_factory_core.testing import serve_handler

from .fake_embeddings import vector_for
from .fake_openai import FakeOpenAI

OPENAI_KEY = "sk-proj-embeddings-key-0001"
AZURE_KEY = "azure-embeddings-key-0000000002"
TEXTS = ["The quick brown fox", "jumps over", "the lazy dog"]

pytestmark = pytest.mark.anyio


def openai_config(model: str = "text-embedding-3-small", **extra: Any) -> ModelConfig:
    return ModelConfig(provider="openai", model_name="embed", model=model, api_key=OPENAI_KEY, **extra)


def azure_config(**extra: Any) -> ModelConfig:
    extra.setdefault("api_version", "2024-10-21")
    return ModelConfig(
        provider="openai", model_name="embed", model="text-embedding-3-large", api_key=AZURE_KEY, **extra
    )


@contextlib.asynccontextmanager
async def served(
    handler: Any, configs: list[ModelConfig], transport: str, suffix: str = "/v1", **options: Any
) -> AsyncIterator[LLMFactory]:
    """A factory whose deployments call ``handler`` on 127.0.0.1 (``api_base`` = URL + ``suffix``)."""
    options.setdefault("num_retries", 0)
    options.setdefault("cooldown", 0.0)
    with serve_handler(handler) as base:
        moved = [c.model_copy(update={"api_base": base + suffix}) for c in configs]
        async with LLMFactory(moved, transport=transport, **options) as factory:
            yield factory


def vectors(result: Any) -> list[list[float]]:
    return [e.embedding for e in result.data]


async def test_openai_embeddings(http_transport: str) -> None:
    fake = FakeOpenAI()
    async with served(fake, [openai_config()], http_transport) as factory:
        result = await factory.embed_async(TEXTS, model="embed")
    assert vectors(result) == [vector_for(t, 1536) for t in TEXTS]
    assert [e.index for e in result.data] == [0, 1, 2]
    assert result.model == "text-embedding-3-small"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (9, 9)
    seen = fake.requests[0]
    assert seen.path == "/v1/embeddings" and seen.auth_header == "authorization" and seen.key == OPENAI_KEY
    # Floats asked upstream (the caller's encoding is applied at the edge).
    assert seen.body == {"model": "text-embedding-3-small", "input": TEXTS, "encoding_format": "float"}


async def test_one_text_dimensions_and_base64(http_transport: str) -> None:
    fake = FakeOpenAI()
    async with served(fake, [openai_config()], http_transport) as factory:
        result = await factory.embed_async("hello", dimensions=256, encoding_format="base64", user="u-1")
    packed = result.data[0].embedding
    assert isinstance(packed, str)
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector_for("hello", 256)
    assert fake.requests[0].body == {
        "model": "text-embedding-3-small",
        "input": "hello",
        "encoding_format": "float",
        "dimensions": 256,
        "user": "u-1",
    }


async def test_token_arrays_pass_through(http_transport: str) -> None:
    fake = FakeOpenAI()
    async with served(fake, [openai_config()], http_transport) as factory:
        result = await factory.embed_async(EmbeddingRequest(input=[[1, 2, 3], [4, 5]]))
    assert vectors(result) == [vector_for([1, 2, 3], 1536), vector_for([4, 5], 1536)]
    assert fake.requests[0].body["input"] == [[1, 2, 3], [4, 5]]


async def test_azure_classic_url_and_api_key(http_transport: str) -> None:
    fake = FakeOpenAI(deployment_models={"emb-prod": "text-embedding-3-large"})
    config = azure_config(deployment="emb-prod")
    async with served(fake, [config], http_transport, suffix="") as factory:
        result = await factory.embed_async(TEXTS[:2], dimensions=1024)
    assert vectors(result) == [vector_for(t, 1024) for t in TEXTS[:2]]
    seen = fake.requests[0]
    assert (seen.route, seen.deployment, seen.query) == ("azure", "emb-prod", {"api-version": "2024-10-21"})
    assert seen.path == "/openai/deployments/emb-prod/embeddings"
    assert (seen.auth_header, seen.key) == ("api-key", AZURE_KEY)


async def test_azure_v1_url_bearer_and_deployment_as_model(http_transport: str) -> None:
    fake = FakeOpenAI()
    config = azure_config(api_version=None, azure=True, deployment="text-embedding-3-large")
    async with served(fake, [config], http_transport, suffix="/openai/v1") as factory:
        result = await factory.embed_async(["a b"])
    assert vectors(result) == [vector_for("a b", 3072)]
    seen = fake.requests[0]
    assert (seen.route, seen.path, seen.auth_header) == ("azure-v1", "/openai/v1/embeddings", "authorization")
    assert seen.body["model"] == "text-embedding-3-large"


async def test_azure_entra_token_provider(http_transport: str) -> None:
    fake = FakeOpenAI()
    tokens = iter(["entra-token-0001", "entra-token-0002"])
    config = ModelConfig(
        provider="openai",
        model_name="embed",
        model="text-embedding-3-small",
        api_version="2024-10-21",
        azure_ad_token_provider=lambda: next(tokens),
    )
    async with served(fake, [config], http_transport, suffix="") as factory:
        await factory.embed_async("one")
        await factory.embed_async("two")
    assert [(r.auth_header, r.key) for r in fake.requests] == [
        ("authorization", "entra-token-0001"),
        ("authorization", "entra-token-0002"),
    ]


async def test_a_long_list_is_sent_in_batches_and_merged_in_order(http_transport: str) -> None:
    """The fake refuses more than 3 inputs a request here; the deployment batches by 3."""
    fake = FakeOpenAI(max_embedding_inputs=3)
    texts = [f"text number {i}" for i in range(8)]
    async with served(fake, [openai_config(embedding_batch_size=3)], http_transport) as factory:
        result = await factory.embed_async(texts)
    assert fake.embedding_batches == [3, 3, 2]
    assert [e.index for e in result.data] == list(range(8))
    assert vectors(result) == [vector_for(t, 1536) for t in texts]
    assert result.usage.prompt_tokens == result.usage.total_tokens == 3 * 8
    assert [r.body["input"] for r in fake.requests] == [texts[0:3], texts[3:6], texts[6:8]]


async def test_over_the_upstream_limit_without_batching_is_its_400(http_transport: str) -> None:
    """What the batching above prevents: the upstream's own refusal, as a bad request."""
    fake = FakeOpenAI(max_embedding_inputs=3)
    async with served(fake, [openai_config()], http_transport) as factory:
        with pytest.raises(BadRequestError, match=r"'\$\.input' is invalid"):
            await factory.embed_async([f"t{i}" for i in range(4)])


def test_the_batch_size_cannot_exceed_the_api_limit() -> None:
    with pytest.raises(Exception, match="embedding_batch_size"):
        LLMFactory([openai_config(embedding_batch_size=2049)])


async def test_a_failed_batch_fails_the_call(http_transport: str) -> None:
    fake = FakeOpenAI()
    texts = [f"t{i}" for i in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        if len(fake.requests) == 1:  # the second batch
            fake.push("rate_limit", retry_after="4")
        return fake(request)

    async with served(handler, [openai_config(embedding_batch_size=3)], http_transport) as factory:
        with pytest.raises((RateLimitError, AllDeploymentsFailedError)) as info:
            await factory.embed_async(texts)
    error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
    assert isinstance(error, RateLimitError) and error.retry_after == 4
    assert fake.embedding_batches == [3, 2]


@pytest.mark.parametrize(
    ("kind", "error_class"),
    [("rate_limit", RateLimitError), ("auth", AuthenticationError), ("quota", InsufficientQuotaError)],
)
async def test_errors_are_typed_and_show_no_secret(http_transport: str, kind: str, error_class: type) -> None:
    fake = FakeOpenAI()
    fake.push(kind, retry_after="6")
    async with served(fake, [openai_config()], http_transport) as factory:
        with pytest.raises((error_class, AllDeploymentsFailedError)) as info:
            await factory.embed_async("hi")
    error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
    assert isinstance(error, error_class) and isinstance(error, ProviderError)
    assert error.provider == "openai"
    assert OPENAI_KEY not in str(info.value) and OPENAI_KEY not in repr(info.value)


async def test_dimensions_on_a_model_without_them_is_a_bad_request(http_transport: str) -> None:
    fake = FakeOpenAI()
    configs = [openai_config("text-embedding-ada-002", name="one"), openai_config("text-embedding-ada-002", name="two")]
    async with served(fake, configs, http_transport) as factory:
        with pytest.raises(BadRequestError, match="does not support specifying dimensions"):
            await factory.embed_async("hi", dimensions=256)
    assert len(fake.requests) == 1, "a bad request is not failed over"


async def test_fails_over_to_the_next_deployment(http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("server_error")
    configs = [openai_config(name="first"), openai_config(name="second")]
    async with served(fake, configs, http_transport, strategy="first_available") as factory:
        result = await factory.embed_async(["x"])
        failures = {s.name: s.failures for s in factory.status()}
    assert vectors(result) == [vector_for("x", 1536)]
    assert failures == {"first": 1, "second": 0}


@pytest.mark.parametrize(
    "reply",
    [
        {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "m"},
        {"object": "list", "model": "m"},
        {"error": {"message": "The server had an error", "type": "server_error", "code": None}},
    ],
    ids=["too-few", "no-data", "error-in-200"],
)
async def test_a_reply_that_does_not_match_its_batch_is_an_error(http_transport: str, reply: dict[str, Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=reply)

    async with served(handler, [openai_config()], http_transport) as factory:
        with pytest.raises((ServerError, AllDeploymentsFailedError)) as info:
            await factory.embed_async(["a", "b"])
    error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
    assert isinstance(error, ServerError), error


async def test_the_callers_request_is_left_untouched(http_transport: str) -> None:
    fake = FakeOpenAI()
    request = EmbeddingRequest(input=[f"t{i}" for i in range(5)], dimensions=64)
    before = request.model_dump_json()
    async with served(fake, [openai_config(embedding_batch_size=2)], http_transport) as factory:
        await factory.embed_async(request)
    assert request.model_dump_json() == before
    assert json.loads(before)["input"] == [f"t{i}" for i in range(5)]
