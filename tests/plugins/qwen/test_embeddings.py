"""Embeddings in the qwen plugin against the DashScope fake (checked with the dashscope and openai
SDKs in ``test_fake_with_sdk``), over real sockets on both HTTP transports and both APIs: the
native body and compatible mode's, ``dimensions`` / ``text_type``, batches within the model's
limit merged in order, errors, failover, and the gateway's ``POST /v1/embeddings``."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    EmbeddingRequest,
    InsufficientQuotaError,
    LLMFactory,
    ProviderError,
    RateLimitError,
    ServerError,
)
from llm_factory_core.testing import serve_handler

from .conftest import COMPAT_BASE, NATIVE_BASE, make_factory, qwen_config
from .fake_dashscope import ERRORS, KEY, FakeDashScope, Turn
from .fake_embeddings import COMPAT_EMBEDDINGS_PATH, NATIVE_EMBEDDINGS_PATH, vector_for

pytestmark = pytest.mark.anyio

TEXTS = ["风急天高猿啸哀", "The quick brown fox", "jumps over the lazy dog"]


def embed_config(base: str, model: str = "text-embedding-v4", **extra: Any) -> Any:
    return qwen_config(base, model_name="embed", model=model, **extra)


def vectors(result: Any) -> list[Any]:
    return [e.embedding for e in result.data]


def unwrap(error: BaseException) -> BaseException:
    if isinstance(error, AllDeploymentsFailedError) and error.last_error is not None:
        return error.last_error
    return error


async def test_native_body_reply_and_usage(fake: FakeDashScope) -> None:
    async with make_factory(fake, embed_config(NATIVE_BASE, workspace="ws-embed-1")) as factory:
        result = await factory.embed_async(TEXTS, model="embed")
    assert vectors(result) == [vector_for(t, 1024) for t in TEXTS]
    assert [e.index for e in result.data] == [0, 1, 2]
    assert result.model == "text-embedding-v4"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (1 + 4 + 5, 10)
    sent = fake.requests[0]
    assert sent.path == NATIVE_EMBEDDINGS_PATH
    assert sent.body == {"model": "text-embedding-v4", "input": {"texts": TEXTS}}
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-dashscope-workspace"] == "ws-embed-1"
    assert "x-dashscope-sse" not in sent.headers, "an embeddings call is not a stream"


async def test_compatible_body_reply_and_usage(fake: FakeDashScope) -> None:
    async with make_factory(fake, embed_config(COMPAT_BASE, model="text-embedding-v3")) as factory:
        result = await factory.embed_async(TEXTS)
    assert vectors(result) == [vector_for(t, 1024) for t in TEXTS]
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (10, 10)
    sent = fake.requests[0]
    assert sent.path == COMPAT_EMBEDDINGS_PATH
    assert sent.body == {"model": "text-embedding-v3", "input": TEXTS, "encoding_format": "float"}
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_native_dimension_text_type_and_other_parameters(fake: FakeDashScope) -> None:
    request = EmbeddingRequest(
        input="what is the capital of Zhejiang?",
        dimensions=256,
        user="u-1",
        encoding_format="base64",
        text_type="query",
        extra_body={"parameters": {"output_type": "dense"}},
    )
    async with make_factory(fake, embed_config(NATIVE_BASE)) as factory:
        result = await factory.embed_async(request)
    packed = result.data[0].embedding
    assert isinstance(packed, str), "the caller's base64 is applied at the edge"
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector_for(request.texts[0], 256, "query")
    assert fake.requests[0].body == {
        "model": "text-embedding-v4",
        "input": {"texts": ["what is the capital of Zhejiang?"]},
        "parameters": {"text_type": "query", "output_type": "dense", "dimension": 256},
    }


async def test_compatible_dimensions(fake: FakeDashScope) -> None:
    async with make_factory(fake, embed_config(COMPAT_BASE)) as factory:
        result = await factory.embed_async("hello", dimensions=512)
    assert vectors(result) == [vector_for("hello", 512)]
    assert fake.requests[0].body["dimensions"] == 512 and fake.requests[0].body["input"] == ["hello"]


async def test_a_dimension_the_model_lacks_is_a_bad_request(fake: FakeDashScope, base: str) -> None:
    configs = [embed_config(base, model="text-embedding-v3", name=n) for n in ("one", "two")]
    async with make_factory(fake, *configs) as factory:
        with pytest.raises(BadRequestError, match="dimension"):
            await factory.embed_async("hi", dimensions=2048)
    assert len(fake.requests) == 1, "a bad request is not failed over"


@pytest.mark.parametrize(
    ("model", "batches"),
    [("text-embedding-v4", [10, 10, 3]), ("text-embedding-v3", [10, 10, 3]), ("text-embedding-v2", [23])],
)
async def test_a_long_list_is_sent_within_the_models_limit_and_merged_in_order(
    fake: FakeDashScope, base: str, model: str, batches: list[int]
) -> None:
    texts = [f"text number {i}" for i in range(23)]
    async with make_factory(fake, embed_config(base, model=model)) as factory:
        result = await factory.embed_async(texts)
    assert fake.embedding_batches == batches
    assert [e.index for e in result.data] == list(range(23))
    dimension = 1536 if model == "text-embedding-v2" else 1024
    assert vectors(result) == [vector_for(t, dimension) for t in texts]
    assert result.usage.total_tokens == result.usage.prompt_tokens == 3 * 23


async def test_the_batch_size_setting(fake: FakeDashScope, base: str) -> None:
    texts = [f"t{i}" for i in range(9)]
    async with make_factory(fake, embed_config(base, embedding_batch_size=4)) as factory:
        result = await factory.embed_async(texts)
    assert fake.embedding_batches == [4, 4, 1]
    assert vectors(result) == [vector_for(t, 1024) for t in texts]


async def test_over_the_upstream_limit_is_its_400(fake: FakeDashScope, base: str) -> None:
    """What the default batching prevents: a batch size above v4's 10 is refused upstream."""
    async with make_factory(fake, embed_config(base, embedding_batch_size=25)) as factory:
        with pytest.raises(BadRequestError, match="should not be larger than 10"):
            await factory.embed_async([f"t{i}" for i in range(11)])


def test_the_batch_size_cannot_exceed_any_models_limit() -> None:
    with pytest.raises(ConfigurationError, match="embedding_batch_size"):
        LLMFactory([embed_config(NATIVE_BASE, embedding_batch_size=26)])


@pytest.mark.parametrize(
    ("value", "match"), [([[1, 2, 3]], "not token ids"), (["a", ""], "empty strings")], ids=["tokens", "empty"]
)
async def test_inputs_dashscope_cannot_embed_are_refused_before_sending(
    fake: FakeDashScope, base: str, value: Any, match: str
) -> None:
    async with make_factory(fake, embed_config(base)) as factory:
        with pytest.raises(BadRequestError, match=match) as info:
            await factory.embed_async(EmbeddingRequest(input=value))
    assert info.value.param == "input"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("kind", "error_class"),
    [
        ("rate_limit", RateLimitError),
        ("auth", AuthenticationError),
        ("quota", InsufficientQuotaError),
        ("arrearage", InsufficientQuotaError),
        ("content_filter", ContentFilterError),
        ("server", ServerError),
    ],
)
async def test_errors_are_typed_and_show_no_secret(
    fake: FakeDashScope, base: str, kind: str, error_class: type[ProviderError]
) -> None:
    fake.queue(Turn(error=ERRORS[kind]))
    async with make_factory(fake, embed_config(base)) as factory:
        with pytest.raises((error_class, AllDeploymentsFailedError)) as info:
            await factory.embed_async("hi")
    error = unwrap(info.value)
    assert isinstance(error, error_class), f"{kind} became {type(error).__name__}"
    assert isinstance(error, ProviderError) and error.provider == "qwen"
    assert KEY not in str(info.value) and KEY not in repr(info.value)


async def test_a_wrong_key_is_an_authentication_error(fake: FakeDashScope, base: str) -> None:
    config = embed_config(base, api_key="sk-wrong-qwen-key-000000000")
    async with make_factory(fake, config) as factory:
        with pytest.raises((AuthenticationError, AllDeploymentsFailedError)) as info:
            await factory.embed_async("hi")
    assert isinstance(unwrap(info.value), AuthenticationError)
    assert "sk-wrong-qwen-key-000000000" not in str(info.value)


async def test_a_failed_batch_fails_the_call(fake: FakeDashScope, base: str) -> None:
    fake.queue(Turn(), Turn(error=ERRORS["rate_limit"]))
    async with make_factory(fake, embed_config(base, embedding_batch_size=3)) as factory:
        with pytest.raises((RateLimitError, AllDeploymentsFailedError)) as info:
            await factory.embed_async([f"t{i}" for i in range(5)])
    assert isinstance(unwrap(info.value), RateLimitError)
    assert fake.embedding_batches == [3], "the second batch was refused before it was counted"
    assert len(fake.requests) == 2


async def test_fails_over_to_the_next_deployment(fake: FakeDashScope, base: str) -> None:
    fake.queue(Turn(error=ERRORS["server"]))
    configs = [embed_config(base, name="first"), embed_config(base, name="second")]
    async with make_factory(fake, *configs, strategy="first_available") as factory:
        result = await factory.embed_async(["x"])
        failures = {s.name: s.failures for s in factory.status()}
    assert vectors(result) == [vector_for("x", 1024)]
    assert failures == {"first": 1, "second": 0}


# -- replies that do not match their batch (a hand-written upstream, still on a real socket) -------


@pytest.fixture
def scripted(http_transport: str) -> Iterator[tuple[list[dict[str, Any]], str, str]]:
    replies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=replies.pop(0))

    with serve_handler(handler) as url:
        yield replies, url, http_transport


def scripted_factory(url: str, transport: str, native: bool) -> LLMFactory:
    suffix = "/api/v1" if native else "/compatible-mode/v1"
    config = embed_config(url + suffix)
    return LLMFactory([config], transport=transport, num_retries=0, cooldown=0.0)


async def test_native_embeddings_are_ordered_by_text_index(scripted: Any) -> None:
    replies, url, transport = scripted
    replies.append(
        {
            "output": {
                "embeddings": [{"text_index": 1, "embedding": [0.0, 1.0]}, {"text_index": 0, "embedding": [1.0, 0.0]}]
            },
            "usage": {"total_tokens": 4},
            "request_id": "r-1",
        }
    )
    async with scripted_factory(url, transport, native=True) as factory:
        result = await factory.embed_async(["a", "b"])
    assert vectors(result) == [[1.0, 0.0], [0.0, 1.0]]
    assert result.usage.total_tokens == 4


@pytest.mark.parametrize(
    ("native", "reply", "error_class"),
    [
        (True, {"output": {"embeddings": [{"text_index": 0, "embedding": [0.1]}]}, "usage": {}}, ServerError),
        (
            True,
            {"output": {"embeddings": [{"text_index": 0, "embedding": [0.1]}, {"text_index": 0, "embedding": [0.2]}]}},
            ServerError,
        ),
        (True, {"request_id": "r-2"}, ServerError),
        (True, {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded"}, RateLimitError),
        (
            False,
            {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "m"},
            ServerError,
        ),
        (False, {"object": "list", "model": "m"}, ServerError),
        (False, {"error": {"message": "Invalid API-key provided.", "code": "invalid_api_key"}}, AuthenticationError),
    ],
    ids=[
        "native-too-few",
        "native-same-index",
        "native-no-output",
        "native-code-in-200",
        "compat-too-few",
        "compat-no-data",
        "compat-error-in-200",
    ],
)
async def test_a_reply_that_does_not_match_its_batch_is_an_error(
    scripted: Any, native: bool, reply: dict[str, Any], error_class: type[ProviderError]
) -> None:
    replies, url, transport = scripted
    replies.append(reply)
    async with scripted_factory(url, transport, native) as factory:
        with pytest.raises((error_class, AllDeploymentsFailedError)) as info:
            await factory.embed_async(["a", "b"])
    assert isinstance(unwrap(info.value), error_class), unwrap(info.value)


async def test_the_callers_request_is_left_untouched(fake: FakeDashScope, base: str) -> None:
    request = EmbeddingRequest(input=[f"t{i}" for i in range(5)], dimensions=64, text_type="document")
    before = request.model_dump_json()
    async with make_factory(fake, embed_config(base, embedding_batch_size=2)) as factory:
        await factory.embed_async(request)
    assert request.model_dump_json() == before
