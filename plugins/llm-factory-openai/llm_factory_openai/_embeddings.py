"""Embeddings on OpenAI (``POST {base}/embeddings``), Azure OpenAI (classic
``/openai/deployments/{deployment}/embeddings?api-version=...`` and ``/openai/v1/embeddings``) and
OpenAI-compatible servers: the core's OpenAI embeddings codec, plus batching.

OpenAI takes at most 2048 inputs per request ("any array must be 2048 dimensions or less", API
reference, Embeddings: create); a longer list is sent in batches of ``embedding_batch_size`` and the
replies are merged in input order, with their usage summed. A smaller batch size is for servers
with a lower limit or for staying under OpenAI's 300,000 tokens per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from llm_factory_core import EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from llm_factory_core.providers import decode_openai_embeddings, encode_openai_embeddings

__all__ = ["MAX_BATCH", "embed_in_batches", "embeddings_url", "split_inputs"]

MAX_BATCH = 2048
"""OpenAI's (and Azure's) limit of inputs in one embeddings request."""

_CHAT = "/chat/completions"


def embeddings_url(chat_url: str) -> str:
    """The embeddings URL beside a deployment's chat URL (same base, same ``api-version``)."""
    path, sep, query = chat_url.partition("?")
    if not path.endswith(_CHAT):  # every URL the provider builds ends so; guard against a refactor
        raise ValueError(f"unexpected chat URL shape: {path}")
    return path[: -len(_CHAT)] + "/embeddings" + sep + query


def split_inputs(value: Any, size: int) -> list[Any]:
    """The request's ``input`` as the inputs of each upstream request: one text or one token
    array is one input; a list of texts or of token arrays is cut into lists of ``size``."""
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        return [value]
    items: Sequence[Any] = value
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _count(batch: Any) -> int:
    if isinstance(batch, str) or (batch and isinstance(batch[0], int)):
        return 1
    return len(batch)


async def embed_in_batches(
    request: EmbeddingRequest,
    model: str,
    batch_size: int,
    post: Callable[[dict[str, Any]], Awaitable[Any]],
    decode_error: Callable[[str], Exception],
) -> EmbeddingResponse:
    """Send ``request`` in batches through ``post`` (body -> decoded JSON reply), one after the
    other (a burst of parallel batches would trip the rate limit it is meant to respect), and
    merge the replies. ``decode_error(message)`` builds the error for a reply that does not match
    its batch."""
    body = encode_openai_embeddings(request, model)
    data: list[Any] = []
    usage = EmbeddingUsage()
    reported_model: str | None = None
    for batch in split_inputs(request.input, batch_size):
        reply = decode_openai_embeddings(await post({**body, "input": batch}), model)
        expected = _count(batch)
        if len(reply.data) != expected or [e.index for e in reply.data] != list(range(expected)):
            raise decode_error(
                f"upstream returned {len(reply.data)} embeddings (indexes {[e.index for e in reply.data][:5]}...) "
                f"for {expected} inputs"
            )
        offset = len(data)
        data += [e.model_copy(update={"index": offset + e.index}) for e in reply.data]
        usage = EmbeddingUsage(
            prompt_tokens=usage.prompt_tokens + reply.usage.prompt_tokens,
            total_tokens=usage.total_tokens + reply.usage.total_tokens,
        )
        reported_model = reported_model or reply.model
    return EmbeddingResponse(data=data, model=reported_model or model, usage=usage)
