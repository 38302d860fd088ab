"""Gemini's ``models/{model}:batchEmbedContents`` for ``FakeGemini``.

Modelled rules (API reference models.batchEmbedContents, the gemini-embedding-001 model page, and
what google-genai's ``models.embed_content`` sends):

* Body ``{"requests": [...]}``; each request ``model`` (``models/{model}``, which the SDK always
  sets to the URL's model), ``content`` with text parts, optional ``taskType``, ``title`` and
  ``outputDimensionality``. Field names in JSON (camelCase) or proto (snake_case) form.
* At most 100 requests per batch: 400 "* BatchEmbedContentsRequest.requests: at most 100 requests
  can be in one batch" (langchain-ai/langchainjs#4491, weaviate/weaviate#11277).
* An empty text part: 400 "required oneof field 'data' must have one initialized field".
* ``outputDimensionality`` between 128 and 3072 for gemini-embedding-001 (model page: "Flexible,
  supports: 128 - 3072"); the shortened vector is the full one truncated (Matryoshka) and NOT
  renormalised (embeddings guide: only the 3072-dimension output is normalised).
* ``taskType`` is one of the API's TaskType values; it changes the vector.
* Reply ``{"embeddings": [{"values": [...]}]}`` in request order.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

__all__ = ["FULL_DIMENSIONS", "TASK_TYPES", "embeddings_reply", "full_vector"]

FULL_DIMENSIONS = 3072
TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
    "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
}  # fmt: skip
_REQUEST = {"model", "content", "taskType", "title", "outputDimensionality"}


def full_vector(text: str, task_type: str | None = None) -> list[float]:
    """The normalised 3072-dimension vector the fake gives ``text`` (for ``task_type``)."""
    seed = f"{task_type or ''}|{text}".encode()
    raw: list[float] = []
    counter = 0
    while len(raw) < FULL_DIMENSIONS:
        digest = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        raw += [(b - 127.5) / 127.5 for b in digest]
        counter += 1
    raw = raw[:FULL_DIMENSIONS]
    norm = math.sqrt(sum(v * v for v in raw))
    return [v / norm for v in raw]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _invalid(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def embeddings_reply(body: Any, model: str, *, usage: bool = False) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for one ``batchEmbedContents`` call."""
    if not isinstance(body, dict):
        return _invalid("Invalid JSON payload received.")
    for key in body:
        if key != "requests":
            return _invalid(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return _invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    if len(requests) > 100:
        return _invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
    embeddings = []
    tokens = 0
    for i, raw in enumerate(requests):
        request = {_camel(k): v for k, v in raw.items()} if isinstance(raw, dict) else {}
        for key in request:
            if key not in _REQUEST:
                return _invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at 'requests[{i}]'.")
        if request.get("model") != f"models/{model}":
            return _invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: model must be models/{model}")
        parts = (request.get("content") or {}).get("parts")
        if not isinstance(parts, list) or not parts:
            return _invalid(
                f"* BatchEmbedContentsRequest.requests[{i}].content.parts: contents.parts must not be empty."
            )
        text = ""
        for p, part in enumerate(parts):
            if not isinstance(part, dict) or not part.get("text"):
                return _invalid(
                    f"* BatchEmbedContentsRequest.requests[{i}].content.parts[{p}].data: required oneof field "
                    "'data' must have one initialized field"
                )
            text += part["text"]
        task = request.get("taskType")
        if task is not None and task not in TASK_TYPES:
            return _invalid(
                f"Invalid value at 'requests[{i}].task_type' "
                f'(type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), "{task}"'
            )
        dimensions = request.get("outputDimensionality")
        if dimensions is not None and (not isinstance(dimensions, int) or not 128 <= dimensions <= FULL_DIMENSIONS):
            return _invalid(
                f"* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: must be between 128 and 3072"
            )
        embeddings.append({"values": full_vector(text, task)[: dimensions or FULL_DIMENSIONS]})
        tokens += len(text.split())
    reply: dict[str, Any] = {"embeddings": embeddings}
    if usage:
        reply["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return 200, reply
