"""Embeddings on the Gemini API: ``POST .../models/{model}:batchEmbedContents`` (pure functions).

Request: ``{"requests": [{"model": "models/{model}", "content": {"parts": [{"text": ...}]},
"outputDimensionality": n, "taskType": ..., "title": ...}]}``; reply: ``{"embeddings": [{"values":
[...]}]}`` in request order (API reference, models.batchEmbedContents; google-genai
``models.embed_content`` sends this shape with ``model`` in every request). At most 100 requests
per batch (400 "BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch":
langchain-ai/langchainjs#4491, vercel/ai#16575), so longer lists are sent in several batches.

Only gemini-embedding-001's 3072-dimension output is normalised (Gemini embeddings guide,
"Ensuring quality for smaller dimensions"); OpenAI clients expect unit vectors, so a shortened
vector is normalised here unless ``normalize_embeddings`` is off.
"""

from __future__ import annotations

import math
from typing import Any

from llm_factory_core import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage

from ._errors import EncodeError

__all__ = ["MAX_BATCH", "decode_embeddings", "encode_embeddings", "merge", "texts_of"]

MAX_BATCH = 100
"""Gemini's limit of requests in one ``batchEmbedContents`` call."""

_PER_REQUEST = {"taskType": "taskType", "task_type": "taskType", "title": "title"}
"""Caller extras that belong to each ``EmbedContentRequest`` rather than to the batch body."""


def texts_of(request: EmbeddingRequest) -> list[str]:
    """The inputs as texts; token-id inputs (OpenAI's tokeniser) mean nothing to Gemini."""
    try:
        texts = request.texts
    except ValueError:
        raise EncodeError(
            "Gemini embeds text only: send input as a string or a list of strings, not token ids"
        ) from None
    if any(not text for text in texts):
        raise EncodeError("input must not contain empty strings (Gemini refuses empty content)")
    return texts


def encode_embeddings(texts: list[str], request: EmbeddingRequest, model: str, task_type: str | None) -> dict[str, Any]:
    """The ``batchEmbedContents`` body for ``texts`` (one batch)."""
    extras = {**(request.model_extra or {}), **(request.extra_body or {})}
    extras.pop("model", None)
    extras.pop("input", None)
    common: dict[str, Any] = {"model": f"models/{model}"}
    if request.dimensions is not None:
        common["outputDimensionality"] = request.dimensions
    if task_type:
        common["taskType"] = task_type
    body: dict[str, Any] = {}
    for key, value in extras.items():
        if key in _PER_REQUEST:
            common[_PER_REQUEST[key]] = value
        else:
            body[key] = value  # merged like any extra_body: the API names what it does not know
    # ``role: user`` as google-genai sends it (a Content's role; the API accepts it without one).
    body["requests"] = [{**common, "content": {"parts": [{"text": text}], "role": "user"}} for text in texts]
    return body


def _normalized(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm else values


def decode_embeddings(data: Any, expected: int, offset: int, normalize: bool) -> tuple[list[Embedding], int]:
    """The embeddings of one batch (indexes from ``offset``) and its prompt tokens when reported.
    Raises ValueError when the reply does not hold one vector per input."""
    items = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        count = len(items) if isinstance(items, list) else "no"
        raise ValueError(f"upstream returned {count} embeddings for {expected} inputs")
    out = []
    for i, item in enumerate(items):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not values:
            raise ValueError(f"upstream embedding {i} has no values")
        out.append(Embedding(index=offset + i, embedding=_normalized(values) if normalize else values))
    usage = data.get("usageMetadata") or {}
    tokens = usage.get("promptTokenCount", 0) if isinstance(usage, dict) else 0
    return out, tokens if isinstance(tokens, int) else 0


def merge(batches: list[tuple[list[Embedding], int]], model: str) -> EmbeddingResponse:
    data = [e for embeddings, _ in batches for e in embeddings]
    tokens = sum(t for _, t in batches)
    return EmbeddingResponse(data=data, model=model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
