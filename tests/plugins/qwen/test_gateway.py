"""The OpenAI SDK -> the llm-factory gateway -> the DashScope fake, over real sockets on both HTTP
transports and both DashScope APIs: what a gateway user's ``extra_body`` and ``reasoning_effort``
become upstream, and that a thinking model's plain call comes back whole. Needs the server
distribution (skipped in the plugin's own nox session, run in ``nox -s all``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from .conftest import NATIVE_BASE, make_factory, qwen_config
from .fake_dashscope import FakeDashScope, Turn
from .fake_embeddings import vector_for

server = pytest.importorskip("llm_factory_server")
helpers = pytest.importorskip("tests.server.helpers")

MESSAGES: Any = [{"role": "user", "content": "6*7?"}]
TOOLS: Any = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]


def params_of(sent: Any) -> dict[str, Any]:
    body = sent.body
    return dict(body["parameters"]) if "parameters" in body else dict(body)


@pytest.fixture
def gateway(fake: FakeDashScope, base: str) -> Iterator[Any]:
    factory = make_factory(fake, qwen_config(base, model_name="qwen3-32b"))
    with factory, helpers.serving(server.create_app(factory)) as running:
        yield running


@pytest.fixture
def sdk(gateway: Any) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="any-key", base_url=f"{gateway.url}/v1", max_retries=0)
    with client:
        yield client


def test_extra_body_reaches_dashscope_and_a_thinking_call_comes_back_whole(
    fake: FakeDashScope, sdk: openai.OpenAI
) -> None:
    fake.queue(Turn(pieces=["4", "2"], reasoning=["six ", "sevens"]))
    reply = sdk.chat.completions.create(
        model="qwen3-32b", messages=MESSAGES, extra_body={"enable_thinking": True, "top_k": 20}
    )
    sent = params_of(fake.requests[-1])
    assert (sent["enable_thinking"], sent["top_k"]) == (True, 20)
    assert reply.choices[0].message.content == "42"
    assert (reply.choices[0].message.model_extra or {}).get("reasoning_content") == "six sevens"
    assert reply.id.startswith("chatcmpl-") and reply.usage is not None


def test_reasoning_effort_and_required_through_the_gateway(fake: FakeDashScope, sdk: openai.OpenAI) -> None:
    fake.queue(Turn(pieces=["ok"]), Turn(pieces=["a", "b"], reasoning=["r"]))
    plain = sdk.chat.completions.create(model="qwen3-32b", messages=MESSAGES, tools=TOOLS, tool_choice="required")
    first = params_of(fake.requests[-1])
    assert first["tool_choice"] == "auto" and first["enable_thinking"] is False
    assert plain.choices[0].message.content == "ok"
    chunks = list(
        sdk.chat.completions.create(model="qwen3-32b", messages=MESSAGES, stream=True, reasoning_effort="low")
    )
    second = params_of(fake.requests[-1])
    assert (second["enable_thinking"], second["thinking_budget"]) == (True, 4096)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"


@pytest.fixture
def embed_sdk(fake: FakeDashScope, base: str) -> Iterator[openai.OpenAI]:
    config = qwen_config(base, model_name="embed", model="text-embedding-v4")
    with make_factory(fake, config) as factory, helpers.serving(server.create_app(factory)) as running:
        client = openai.OpenAI(api_key="any-key", base_url=f"{running.url}/v1", max_retries=0)
        with client:
            yield client


def test_embeddings_through_the_gateway(fake: FakeDashScope, embed_sdk: openai.OpenAI, base: str) -> None:
    """The openai SDK's default (base64 asked) and floats, a list longer than v4's 10 rows, and
    text_type through extra_body."""
    texts = [f"passage {i}" for i in range(12)]
    reply = embed_sdk.embeddings.create(model="embed", input=texts, dimensions=64)
    assert fake.embedding_batches == [10, 2]
    assert [d.embedding for d in reply.data] == [vector_for(t, 64) for t in texts]
    assert [d.index for d in reply.data] == list(range(12))
    assert reply.usage.total_tokens == 24
    floats = embed_sdk.embeddings.create(
        model="embed", input="query", encoding_format="float", extra_body={"text_type": "query"}
    )
    # Native: a parameter; compatible mode documents no text_type (the fake embeds a document).
    native = base == NATIVE_BASE
    assert floats.data[0].embedding == vector_for("query", 1024, "query" if native else "document")
    if native:
        assert fake.requests[-1].body["parameters"] == {"text_type": "query"}
