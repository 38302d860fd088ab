"""DashScope's text embeddings for ``FakeDashScope`` (which routes both paths here).

Modelled rules, from Model Studio's "Text embedding: synchronous API" and "OpenAI compatible -
Embedding" pages (help.aliyun.com/en/model-studio/text-embedding-synchronous-api,
.../embedding-interfaces-compatible-with-openai) unless noted:

* Native ``POST /api/v1/services/embeddings/text-embedding/text-embedding``: ``{"model", "input":
  {"texts": [...]}, "parameters": {"dimension", "text_type", "output_type", "instruct"}}``; reply
  ``{"output": {"embeddings": [{"text_index", "embedding"}]}, "usage": {"total_tokens"},
  "request_id"}``. The ``dashscope`` SDK (``TextEmbedding.call``) sends one text as ``[text]``.
* Compatible ``POST /compatible-mode/v1/embeddings``: OpenAI's body and reply. The docs name
  ``float`` as the only format; the openai SDK asks ``base64`` by default and takes float lists
  as they come (openai-python ``lib/_parsing/_embeddings.py``), so floats are always answered.
* Rows per request: 10 on text-embedding-v3/v4, 25 on v1/v2; over it a 400 ``InvalidParameter``
  "batch size is invalid, it should not be larger than 10.: input.contents" (compatible mode:
  memodb-io/memobase#142, zilliztech/claude-context#177; native: langchain4j/langchain4j#1140).
* ``dimension``: v4 2048/1536/1024 (default)/768/512/256/128/64, v3 1024 (default) down to 64;
  v1/v2 are 1536 and ignore it (langchain4j/langchain4j-community#783). Another value is a 400
  ``InvalidParameter`` (the real wording was not captured: the fake's is its own, and the plugin
  relies only on the code).
* ``text_type``: ``query`` or ``document`` (the SDK's docstring).

Vectors are deterministic unit vectors of the text (and of ``text_type``), so tests compare exactly.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

__all__ = [
    "COMPAT_EMBEDDINGS_PATH",
    "NATIVE_EMBEDDINGS_PATH",
    "compat_embeddings",
    "native_embeddings",
    "vector_for",
]

NATIVE_EMBEDDINGS_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPAT_EMBEDDINGS_PATH = "/compatible-mode/v1/embeddings"

_DIMENSIONS = {
    "text-embedding-v4": (1024, (2048, 1536, 1024, 768, 512, 256, 128, 64)),
    "text-embedding-v3": (1024, (1024, 768, 512, 256, 128, 64)),
    "text-embedding-v2": (1536, ()),
    "text-embedding-v1": (1536, ()),
}


def max_rows(model: str) -> int:
    return 25 if model in ("text-embedding-v1", "text-embedding-v2") else 10


def vector_for(text: str, dimension: int, text_type: str = "document") -> list[float]:
    """A unit vector derived from the text (through float32, as the wire carries it)."""
    seed = f"{text_type}:{text}".encode()
    raw: list[float] = []
    counter = 0
    while len(raw) < dimension:
        digest = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        raw += [(b - 127.5) / 127.5 for b in digest]
        counter += 1
    raw = raw[:dimension]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in raw]


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _problem(model: Any, texts: Any, dimension: Any, text_type: Any) -> str | None:
    """The message of the 400 ``InvalidParameter`` for these values, or None."""
    if not isinstance(model, str) or model not in _DIMENSIONS:
        return "Model not exist." if model else "Model not specified."
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        return "Value error, contents is invalid: input.contents"
    limit = max_rows(model)
    if len(texts) > limit:
        return f"Value error, batch size is invalid, it should not be larger than {limit}.: input.contents"
    allowed = _DIMENSIONS[model][1]
    if dimension is not None and allowed and dimension not in allowed:
        return f"Value error, dimension should be one of {list(allowed)}: parameters.dimension"
    if text_type not in ("query", "document"):
        return "Value error, text_type should be query or document: parameters.text_type"
    return None


def _dimension(model: str, asked: Any) -> int:
    default, allowed = _DIMENSIONS[model]
    return asked if allowed and isinstance(asked, int) else default


def native_embeddings(body: Any, request_id: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON) of the native API's answer to ``body``."""
    body = body if isinstance(body, dict) else {}
    texts = body["input"].get("texts") if isinstance(body.get("input"), dict) else None
    params = body.get("parameters") or {}
    text_type = params.get("text_type", "document")
    problem = _problem(body.get("model"), texts, params.get("dimension"), text_type)
    if problem:
        return 400, {"code": "InvalidParameter", "message": problem, "request_id": request_id}
    assert isinstance(texts, list)
    dimension = _dimension(body["model"], params.get("dimension"))
    embeddings = [{"text_index": i, "embedding": vector_for(t, dimension, text_type)} for i, t in enumerate(texts)]
    usage = {"total_tokens": sum(_tokens(t) for t in texts)}
    return 200, {"output": {"embeddings": embeddings}, "usage": usage, "request_id": request_id}


def compat_embeddings(body: Any, request_id: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON) of compatible mode's answer to ``body``."""
    body = body if isinstance(body, dict) else {}
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    # The compatible page documents no text_type: every text is embedded as a document.
    problem = _problem(body.get("model"), texts, body.get("dimensions"), "document")
    if problem is None and body.get("encoding_format", "float") not in ("float", "base64"):
        problem = "Value error, encoding_format should be float: encoding_format"
    if problem:
        error = {
            "message": f"<400> InternalError.Algo.InvalidParameter: {problem}",
            "type": "InvalidParameter",
            "param": None,
            "code": "InvalidParameter",
        }
        return 400, {"error": error, "id": request_id, "request_id": request_id}
    assert isinstance(texts, list)
    dimension = _dimension(body["model"], body.get("dimensions"))
    data = [{"embedding": vector_for(t, dimension), "index": i, "object": "embedding"} for i, t in enumerate(texts)]
    tokens = sum(_tokens(t) for t in texts)
    return 200, {
        "data": data,
        "model": body["model"],
        "object": "list",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "id": request_id,
    }
