"""factory.embed / embed_async: the same routing and failover as chat; base64 packed as OpenAI packs
it; a provider without embeddings says so."""

from __future__ import annotations

import base64
import struct
from typing import Any, ClassVar

import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    BadRequestError,
    EmbeddingRequest,
    EmbeddingResponse,
    InvalidRequestError,
    LLMFactory,
    ModelConfig,
    ServerError,
    hookimpl,
)
from llm_factory_core.providers import Capabilities, PluginRegistry, Provider, decode_openai_embeddings


class Embedder(Provider):
    key = "embedder"
    capabilities = Capabilities(embeddings=True)
    fail: ClassVar[set[str]] = set()
    seen: ClassVar[list[tuple[str, EmbeddingRequest]]] = []

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        Embedder.seen.append((self.name, request))
        if self.name in Embedder.fail:
            raise self.error(ServerError, "overloaded", status=503)
        data = {"data": [{"index": i, "embedding": [0.5, -1.0, float(i)]} for i, _ in enumerate(request.texts)]}
        return decode_openai_embeddings({**data, "usage": {"prompt_tokens": 4, "total_tokens": 4}}, self.settings.model)


class ChatOnly(Provider):
    key = "chatonly"


class Plugin:
    @hookimpl
    def llm_factory_register_providers(self, register: Any) -> None:
        register(Embedder)
        register(ChatOnly)


def factory(*configs: dict[str, Any], **kw: Any) -> LLMFactory:
    registry = PluginRegistry(entry_points=False)
    registry.register(Plugin(), origin="tests")
    return LLMFactory([ModelConfig(**c) for c in configs], registry=registry, num_retries=0, **kw)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Embedder.fail.clear()
    Embedder.seen.clear()


def test_embed_texts_in_order() -> None:
    with factory({"provider": "embedder", "model_name": "emb", "name": "one"}) as f:
        result = f.embed(["a", "b"], model="emb")
    assert [e.index for e in result.data] == [0, 1]
    assert result.data[1].embedding == [0.5, -1.0, 1.0]
    assert result.usage.prompt_tokens == 4 and result.model == "emb"


def test_base64_is_little_endian_float32_as_openai() -> None:
    with factory({"provider": "embedder", "model_name": "emb"}) as f:
        result = f.embed("a", encoding_format="base64")
    packed = result.data[0].embedding
    assert isinstance(packed, str)
    assert list(struct.unpack("<3f", base64.b64decode(packed))) == [0.5, -1.0, 0.0]


def test_embeddings_fail_over_like_chat() -> None:
    Embedder.fail.add("first")
    configs = [
        {"provider": "embedder", "model_name": "emb", "name": "first"},
        {"provider": "embedder", "model_name": "emb", "name": "second"},
    ]
    with factory(*configs, strategy="first_available") as f:
        f.embed("a")
        states = {s.name: s.state for s in f.status()}
    assert [name for name, _ in Embedder.seen] == ["first", "second"]
    assert states["first"] == "cooldown"


@pytest.mark.anyio
async def test_a_provider_without_embeddings_says_so() -> None:
    async with factory({"provider": "chatonly", "model_name": "chat"}) as f:
        with pytest.raises((BadRequestError, AllDeploymentsFailedError)) as caught:
            await f.embed_async("a")
    assert "does not serve embeddings" in str(caught.value)


def test_bad_input_is_a_clear_error() -> None:
    with factory({"provider": "embedder", "model_name": "emb"}) as f, pytest.raises(InvalidRequestError, match="input"):
        f.embed([])
