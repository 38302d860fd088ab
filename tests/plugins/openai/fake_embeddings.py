"""OpenAI's ``POST /embeddings`` for ``FakeOpenAI`` (which routes to ``embeddings_reply``).

Modelled rules, each from OpenAI's API reference (Embeddings: create) unless noted:

* ``input``: a string, a list of strings, a token array or a list of token arrays; not empty, and
  at most 2048 inputs per request ("any array must be 2048 dimensions or less"; Azure the same:
  MicrosoftDocs/azure-docs#124129). OpenAI's reply for a bad input is a 400 "'$.input' is invalid.".
* ``dimensions`` only on ``text-embedding-3`` and later (400 "This model does not support
  specifying dimensions." on ``text-embedding-ada-002``), at most the model's own size.
* ``encoding_format``: ``float`` (the default) or ``base64`` (little-endian float32, which the
  openai SDK asks for by default and decodes itself: openai-python ``resources/embeddings.py``).
* Vectors are unit length (OpenAI: "embeddings are normalized to length 1"), also when shortened
  with ``dimensions`` (OpenAI's embeddings guide: the API renormalises the shortened vector).

Vectors are deterministic functions of the input, so tests can compare them exactly.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

__all__ = ["MAX_INPUTS", "NATIVE_DIMENSIONS", "embeddings_problem", "embeddings_reply", "vector_for"]

MAX_INPUTS = 2048
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def vector_for(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector derived from the input (and shortened then renormalised, as OpenAI does)."""
    seed = item.encode() if isinstance(item, str) else ",".join(map(str, item)).encode()
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        raw += [(b - 127.5) / 127.5 for b in digest]
        counter += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    # Through float32, as the wire carries it: the base64 form and the float form then agree.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in raw]


def _inputs(value: Any) -> list[str | list[int]] | None:
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if all(isinstance(v, str) and v for v in value):
        return list(value)
    if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
        return list(value)
    return None


def embeddings_problem(body: Any, model: str, max_inputs: int) -> tuple[str, str | None] | None:
    """(message, param) of the 400 OpenAI answers for this body, or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None
    inputs = _inputs(body.get("input"))
    if inputs is None or len(inputs) > max_inputs:
        return (
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            "input",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if model.startswith("text-embedding-ada"):
            return "This model does not support specifying dimensions.", "dimensions"
        native = NATIVE_DIMENSIONS.get(model, 1536)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= native:
            return f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {native}.", "dimensions"
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return (
            f"Invalid value: '{body.get('encoding_format')}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    return None


def embeddings_reply(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The reply to a valid body (``embeddings_problem`` returned None)."""
    inputs = _inputs(body["input"]) or []
    dimensions = body.get("dimensions") or NATIVE_DIMENSIONS.get(model, 1536)
    packed = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        vector = vector_for(item, dimensions)
        tokens += len(item) if isinstance(item, list) else max(1, len(item.split()))
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if packed else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
