"""Embeddings in the gemini plugin (``batchEmbedContents``) against the fake, which the official
google-genai SDK's ``models.embed_content`` validates first. Plugin calls run over real sockets on
both HTTP transports (``env``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    EmbeddingRequest,
    LLMFactory,
    RateLimitError,
    ServerError,
)
from llm_factory_core.testing import serve_handler

from .fake_embeddings import full_vector
from .fake_gemini import VALID_KEY, FakeGemini, GeminiError
from .helpers import OTHER_KEY, Env

MODEL = "gemini-embedding-001"
TEXTS = ["The quick brown fox", "jumps over", "the lazy dog"]


def unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def same(actual: list[Any], expected: list[list[float]]) -> bool:
    """Vectors equal up to float rounding (normalising twice is not bit-exact)."""
    return len(actual) == len(expected) and all(
        len(a) == len(e) and all(abs(x - y) < 1e-9 for x, y in zip(a, e, strict=True))
        for a, e in zip(actual, expected, strict=True)
    )


def last_error(error: BaseException) -> BaseException:
    return error.last_error if isinstance(error, AllDeploymentsFailedError) and error.last_error else error


# -- the SDK and the fake agree -----------------------------------------------------------------------


@pytest.fixture
def sdk_fake() -> Iterator[tuple[FakeGemini, genai.Client]]:
    fake = FakeGemini()
    with fake.serve() as url:
        yield fake, genai.Client(api_key=VALID_KEY, http_options=types.HttpOptions(base_url=url, api_version="v1beta"))


def test_sdk_embed_content_shape(sdk_fake: tuple[FakeGemini, genai.Client]) -> None:
    fake, client = sdk_fake
    config = types.EmbedContentConfig(output_dimensionality=768, task_type="RETRIEVAL_DOCUMENT")
    reply = client.models.embed_content(model=MODEL, contents=["hello world", "bye"], config=config)
    assert reply.embeddings is not None
    assert [e.values for e in reply.embeddings] == [
        full_vector("hello world", "RETRIEVAL_DOCUMENT")[:768],
        full_vector("bye", "RETRIEVAL_DOCUMENT")[:768],
    ]
    sent = fake.requests[0]
    assert sent.path == f"/v1beta/models/{MODEL}:batchEmbedContents"
    assert sent.body == {
        "requests": [
            {
                "content": {"parts": [{"text": "hello world"}], "role": "user"},
                "taskType": "RETRIEVAL_DOCUMENT",
                "outputDimensionality": 768,
                "model": f"models/{MODEL}",
            },
            {
                "content": {"parts": [{"text": "bye"}], "role": "user"},
                "taskType": "RETRIEVAL_DOCUMENT",
                "outputDimensionality": 768,
                "model": f"models/{MODEL}",
            },
        ]
    }


def test_sdk_reads_usage_metadata(sdk_fake: tuple[FakeGemini, genai.Client]) -> None:
    fake, client = sdk_fake
    fake.embedding_usage = True
    reply = client.models.embed_content(model=MODEL, contents=["one two three"])
    assert reply.usage_metadata is not None and reply.usage_metadata.prompt_token_count == 3


@pytest.mark.parametrize(
    ("contents", "config", "message"),
    [
        ([f"t{i}" for i in range(101)], None, "at most 100 requests"),
        (["x"], {"output_dimensionality": 64}, "between 128 and 3072"),
        (["x"], {"task_type": "NOT_A_TASK"}, "TaskType"),
    ],
    ids=["over-100", "dimensions", "task-type"],
)
def test_sdk_raises_for_what_the_api_refuses(
    sdk_fake: tuple[FakeGemini, genai.Client], contents: list[str], config: Any, message: str
) -> None:
    _, client = sdk_fake
    with pytest.raises(errors.ClientError, match=message) as info:
        client.models.embed_content(model=MODEL, contents=contents, config=config)
    assert info.value.code == 400


def test_sdk_raises_for_queued_errors_and_wrong_keys(sdk_fake: tuple[FakeGemini, genai.Client]) -> None:
    fake, client = sdk_fake
    fake.add(GeminiError.rate_limit("5s"))
    with pytest.raises(errors.ClientError) as info:
        client.models.embed_content(model=MODEL, contents=["x"])
    assert info.value.code == 429
    url = client._api_client._http_options.base_url
    other = genai.Client(api_key=OTHER_KEY, http_options=types.HttpOptions(base_url=url, api_version="v1beta"))
    with pytest.raises(errors.ClientError, match="API key not valid"):
        other.models.embed_content(model=MODEL, contents=["x"])


# -- the plugin over real sockets ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_embeddings_in_order(env: Env) -> None:
    async with env.factory(env.config(model=MODEL)) as factory:
        result = await factory.embed_async(TEXTS, model="gemini")
    assert [e.index for e in result.data] == [0, 1, 2]
    assert same([e.embedding for e in result.data], [full_vector(t) for t in TEXTS])
    assert result.model == MODEL
    sent = env.fake.requests[0]
    assert sent.path == f"/v1beta/models/{MODEL}:batchEmbedContents"
    assert sent.headers["x-goog-api-key"] == VALID_KEY
    assert sent.body == {
        "requests": [{"model": f"models/{MODEL}", "content": {"parts": [{"text": t}], "role": "user"}} for t in TEXTS]
    }


@pytest.mark.anyio
async def test_dimensions_are_sent_and_shortened_vectors_normalised(env: Env) -> None:
    async with env.factory(env.config(model=MODEL)) as factory:
        result = await factory.embed_async("hello", dimensions=256, encoding_format="float")
    assert env.fake.requests[0].body["requests"][0]["outputDimensionality"] == 256
    vector = result.data[0].embedding
    assert isinstance(vector, list) and len(vector) == 256
    assert same([vector], [unit(full_vector("hello")[:256])])
    assert sum(v * v for v in vector) == pytest.approx(1.0)


@pytest.mark.anyio
async def test_normalisation_can_be_turned_off(env: Env) -> None:
    async with env.factory(env.config(model=MODEL, normalize_embeddings=False)) as factory:
        result = await factory.embed_async("hello", dimensions=256)
    assert result.data[0].embedding == full_vector("hello")[:256]


@pytest.mark.anyio
async def test_task_type_from_the_deployment_and_from_the_call(env: Env) -> None:
    config = env.config(model=MODEL, embedding_task_type="RETRIEVAL_DOCUMENT")
    async with env.factory(config) as factory:
        documents = await factory.embed_async(["doc"])
        query = await factory.embed_async(EmbeddingRequest(input=["q"], extra_body={"task_type": "RETRIEVAL_QUERY"}))
        titled = await factory.embed_async("t", title="A title")
    bodies = [r.body["requests"][0] for r in env.fake.requests]
    assert [b.get("taskType") for b in bodies] == ["RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT"]
    assert bodies[2]["title"] == "A title"
    assert same([documents.data[0].embedding], [full_vector("doc", "RETRIEVAL_DOCUMENT")])
    assert same([query.data[0].embedding], [full_vector("q", "RETRIEVAL_QUERY")])
    assert len(titled.data) == 1


@pytest.mark.anyio
async def test_more_than_100_inputs_go_in_batches_merged_in_order(env: Env) -> None:
    texts = [f"text {i}" for i in range(230)]
    env.fake.embedding_usage = True
    async with env.factory(env.config(model=MODEL)) as factory:
        result = await factory.embed_async(texts, dimensions=128)
    assert env.fake.embedding_batches == [100, 100, 30]
    assert [e.index for e in result.data] == list(range(230))
    assert same([e.embedding for e in result.data], [unit(full_vector(t)[:128]) for t in texts])
    assert result.usage.prompt_tokens == result.usage.total_tokens == 2 * 230


@pytest.mark.anyio
async def test_a_smaller_batch_size(env: Env) -> None:
    async with env.factory(env.config(model=MODEL, embedding_batch_size=2)) as factory:
        result = await factory.embed_async(TEXTS)
    assert env.fake.embedding_batches == [2, 1]
    assert len(result.data) == 3


def test_the_batch_size_cannot_exceed_the_api_limit(env: Env) -> None:
    with pytest.raises(Exception, match="embedding_batch_size"):
        LLMFactory([env.config(model=MODEL, embedding_batch_size=101)])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("request_input", "message"),
    [([[1, 2, 3]], "token ids"), (["ok", ""], "empty strings")],
    ids=["token-ids", "empty-text"],
)
async def test_inputs_gemini_cannot_embed_are_bad_requests(env: Env, request_input: Any, message: str) -> None:
    async with env.factory(env.config(model=MODEL)) as factory:
        with pytest.raises(BadRequestError, match=message):
            await factory.embed_async(EmbeddingRequest(input=request_input))
    assert env.fake.requests == []


@pytest.mark.anyio
async def test_errors_are_typed_and_fail_over(env: Env) -> None:
    env.fake.add(GeminiError.unavailable())
    configs = [env.config("first", model=MODEL), env.config("second", model=MODEL)]
    async with env.factory(*configs) as factory:
        result = await factory.embed_async(["x"])
        failures = {s.name: s.failures for s in factory.status()}
    assert failures == {"first": 1, "second": 0}
    assert len(result.data) == 1


@pytest.mark.anyio
async def test_rate_limit_and_bad_key(env: Env) -> None:
    env.fake.add(GeminiError.rate_limit("9s"))
    async with env.factory(env.config(model=MODEL), num_retries=0) as factory:
        with pytest.raises((RateLimitError, AllDeploymentsFailedError)) as info:
            await factory.embed_async("x")
    error = last_error(info.value)
    assert isinstance(error, RateLimitError) and error.retry_after == 9
    async with env.factory(env.config(model=MODEL, key=OTHER_KEY), num_retries=0) as factory:
        with pytest.raises((AuthenticationError, AllDeploymentsFailedError)) as info:
            await factory.embed_async("x")
    assert isinstance(last_error(info.value), AuthenticationError)
    assert OTHER_KEY not in str(info.value) and OTHER_KEY not in repr(info.value)


@pytest.mark.anyio
async def test_bad_dimensions_are_the_apis_400(env: Env) -> None:
    async with env.factory(env.config(model=MODEL)) as factory:
        with pytest.raises(BadRequestError, match="between 128 and 3072"):
            await factory.embed_async("x", dimensions=64)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [{"embeddings": [{"values": [0.1, 0.2]}]}, {"embeddings": [{}, {}]}, {}],
    ids=["too-few", "no-values", "nothing"],
)
async def test_a_reply_that_does_not_match_is_a_server_error(http_transport: str, reply: dict[str, Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=reply)

    with serve_handler(handler) as url:
        env = Env(FakeGemini(), url, http_transport)
        async with env.factory(env.config(model=MODEL), num_retries=0) as factory:
            with pytest.raises((ServerError, AllDeploymentsFailedError)) as info:
                await factory.embed_async(["a", "b"])
    assert isinstance(last_error(info.value), ServerError)


@pytest.mark.anyio
async def test_vertex_deployments_say_embeddings_are_not_served(env: Env) -> None:
    config = env.config(model=MODEL, vertex_project="p", access_token="ya29.token-0001", key=None)
    async with env.factory(config) as factory:
        with pytest.raises(BadRequestError, match="Vertex AI"):
            await factory.embed_async("x")
    assert env.fake.requests == []
