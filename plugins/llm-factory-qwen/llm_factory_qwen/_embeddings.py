"""DashScope text embeddings (pure functions): the native API and compatible mode.

Native: ``POST {base}/services/embeddings/text-embedding/text-embedding`` with ``{"model", "input":
{"texts": [...]}, "parameters": {"dimension", "text_type", ...}}``, answered ``{"output":
{"embeddings": [{"text_index", "embedding"}]}, "usage": {"total_tokens"}, "request_id"}`` (Model
Studio, "Text embedding: synchronous API"; the ``dashscope`` SDK's ``TextEmbedding.call`` sends a
single text as a one-item list and every other keyword inside ``parameters``). Compatible mode:
``POST {base}/embeddings``, OpenAI's shape (the core's codec).

Both take at most 10 texts per request on text-embedding-v3/v4 and 25 on v1/v2 (the models table
of that page; over it, 400 "batch size is invalid, it should not be larger than 10.":
memodb-io/memobase#142, langchain4j/langchain4j#1140), so a longer list is sent in batches and
merged in input order, usage summed.
"""

from __future__ import annotations

from typing import Any

from llm_factory_core import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from llm_factory_core.providers import decode_openai_embeddings, encode_openai_embeddings

__all__ = [
    "EMBEDDINGS_PATH",
    "Batch",
    "MAX_BATCH",
    "batch_limit",
    "decode_compatible_batch",
    "decode_native_batch",
    "embedding_texts",
    "encode_compatible_batch",
    "encode_native_batch",
    "merge",
]

EMBEDDINGS_PATH = "/services/embeddings/text-embedding/text-embedding"
"""The native API's text-embedding path (after ``.../api/v1``)."""
MAX_BATCH = 25
"""The most texts any DashScope text embedding model takes in one request (v1/v2)."""
_V3_BATCH = 10
_OLD_MODELS = ("text-embedding-v1", "text-embedding-v2")

Batch = tuple[list[Embedding], int]
"""One upstream reply: its embeddings (indexes already global) and its tokens."""


def batch_limit(model: str) -> int:
    """Texts per request for ``model``: 25 on v1/v2, 10 on v3, v4 and anything newer (the
    stricter limit when the model is not known)."""
    return MAX_BATCH if model.lower().startswith(_OLD_MODELS) else _V3_BATCH


def embedding_texts(request: EmbeddingRequest) -> list[str]:
    """The inputs as texts. Raises ValueError naming the fix for token-id inputs (OpenAI's
    tokeniser means nothing to DashScope) and for empty texts."""
    try:
        texts = request.texts
    except ValueError:
        raise ValueError(
            "DashScope embeds text only: send input as a string or a list of strings, not token ids"
        ) from None
    if any(not text for text in texts):
        raise ValueError("input must not contain empty strings")
    return texts


def _extras(request: EmbeddingRequest) -> dict[str, Any]:
    extras = {**(request.model_extra or {}), **(request.extra_body or {})}
    for key in ("model", "input"):
        extras.pop(key, None)
    return extras


def encode_native_batch(texts: list[str], request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The native body for one batch. OpenAI's ``dimensions`` is DashScope's ``dimension``; the
    caller's extras (``text_type``, ``output_type``, ``instruct``...) go into ``parameters``, where
    the SDK puts its keyword arguments. ``user`` and ``encoding_format`` have no native meaning."""
    parameters = _extras(request)
    nested = parameters.pop("parameters", None)  # extra_body={"parameters": {...}}, the native shape
    if isinstance(nested, dict):
        parameters.update(nested)
    if request.dimensions is not None:
        parameters["dimension"] = request.dimensions
    body: dict[str, Any] = {"model": model, "input": {"texts": texts}}
    if parameters:
        body["parameters"] = parameters
    return body


def encode_compatible_batch(texts: list[str], request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """Compatible mode's body for one batch: OpenAI's, floats asked."""
    return {**encode_openai_embeddings(request, model), "input": texts}


def decode_native_batch(data: Any, expected: int, offset: int) -> Batch:
    """One native reply -> its embeddings in input order (by ``text_index``), indexes from
    ``offset``, and its tokens. Raises ValueError when it does not hold one vector per text."""
    output = data.get("output") if isinstance(data, dict) else None
    items = output.get("embeddings") if isinstance(output, dict) else None
    if not isinstance(items, list):
        raise ValueError("DashScope embeddings reply has no output.embeddings")
    by_index: dict[int, list[float]] = {}
    for item in items:
        index = item.get("text_index") if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(index, int) and isinstance(vector, list) and vector:
            by_index[index] = vector
    if sorted(by_index) != list(range(expected)) or len(items) != expected:
        raise ValueError(
            f"upstream returned {len(items)} embeddings (text_index {sorted(by_index)[:5]}...) for {expected} texts"
        )
    usage = data.get("usage")
    tokens = usage.get("total_tokens", 0) if isinstance(usage, dict) else 0
    embeddings = [Embedding(index=offset + i, embedding=by_index[i]) for i in range(expected)]
    return embeddings, tokens if isinstance(tokens, int) else 0


def decode_compatible_batch(data: Any, expected: int, offset: int, model: str) -> Batch:
    """One compatible-mode reply, checked and re-indexed like a native one."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError("upstream embeddings reply has no data list")
    reply = decode_openai_embeddings(data, model)
    indexes = [e.index for e in reply.data]
    if indexes != list(range(expected)):
        raise ValueError(f"upstream returned {len(indexes)} embeddings (indexes {indexes[:5]}...) for {expected} texts")
    embeddings = [e.model_copy(update={"index": offset + e.index}) for e in reply.data]
    return embeddings, reply.usage.total_tokens or reply.usage.prompt_tokens


def merge(batches: list[Batch], model: str) -> EmbeddingResponse:
    data = [e for embeddings, _ in batches for e in embeddings]
    tokens = sum(t for _, t in batches)
    return EmbeddingResponse(data=data, model=model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
