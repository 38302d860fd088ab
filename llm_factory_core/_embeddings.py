"""Embeddings: an operation beside chat, with the same routing, balancing and failover.

``EmbeddingRequest`` is OpenAI's ``POST /embeddings`` body (plus ``load_balance_strategy``);
``EmbeddingResponse`` its reply. A provider that serves embeddings sets
``Capabilities(embeddings=True)`` and implements ``Provider.embed``; providers whose upstream speaks
OpenAI's embeddings format reuse ``encode_openai_embeddings`` / ``decode_openai_embeddings``.
Vectors are floats inside the library; ``encoding_format="base64"`` (what the openai SDK asks for
by default) packs them as little-endian float32, exactly as OpenAI does, at the edge.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "decode_openai_embeddings",
    "encode_openai_embeddings",
    "pack_base64",
]

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; unknown fields are kept for providers that accept them."""

    model_config = ConfigDict(extra="allow")

    input: EmbeddingInput
    model: str | None = Field(default=None, min_length=1)
    """The configured model name to route to; None means the first configured one."""
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    load_balance_strategy: str | None = None
    extra_body: dict[str, Any] | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: EmbeddingInput) -> EmbeddingInput:
        if value == "" or value == []:
            raise ValueError("input must not be empty")
        if isinstance(value, list) and len(value) > 2048:
            raise ValueError("at most 2048 inputs per request")
        return value

    @property
    def texts(self) -> list[str]:
        """The inputs as texts (token-id inputs are refused by providers that need text)."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        raise ValueError("token-id inputs are not supported by this provider; send text")


class Embedding(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str
    """The vector (a base64 string of little-endian float32 when ``encoding_format`` was base64)."""


class EmbeddingUsage(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage = EmbeddingUsage()

    def packed(self, encoding_format: str | None) -> EmbeddingResponse:
        """The same reply with vectors as the caller asked (``base64`` or floats)."""
        if encoding_format != "base64":
            return self
        data = [
            e.model_copy(update={"embedding": pack_base64(e.embedding)}) if isinstance(e.embedding, list) else e
            for e in self.data
        ]
        return self.model_copy(update={"data": data})


def pack_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _unpack_base64(value: str) -> list[float]:
    raw = base64.b64decode(value)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def encode_openai_embeddings(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The upstream body for an OpenAI-compatible embeddings endpoint (floats asked: the gateway
    packs at the edge, and some compatible servers know no base64)."""
    body: dict[str, Any] = {"model": model, "input": request.input, "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    extra = {k: v for k, v in (request.model_extra or {}).items() if k not in ("model", "input")}
    body.update(extra)
    body.update({k: v for k, v in (request.extra_body or {}).items() if k not in ("model", "input")})
    return body


def decode_openai_embeddings(data: Any, model: str) -> EmbeddingResponse:
    """An OpenAI-shaped embeddings reply (floats or base64) as an ``EmbeddingResponse``."""
    items = []
    for i, item in enumerate(data.get("data") or []):
        vector = item.get("embedding")
        if isinstance(vector, str):
            vector = _unpack_base64(vector)
        items.append(Embedding(index=item.get("index", i), embedding=vector))
    usage = data.get("usage") or {}
    return EmbeddingResponse(
        data=sorted(items, key=lambda e: e.index),
        model=data.get("model") or model,
        usage=EmbeddingUsage(
            prompt_tokens=usage.get("prompt_tokens", 0),
            total_tokens=usage.get("total_tokens", usage.get("prompt_tokens", 0)),
        ),
    )
