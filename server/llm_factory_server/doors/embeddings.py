"""``POST /embeddings``: OpenAI's embeddings API over every provider that serves embeddings, with
the routing, balancing and failover of chat (``factory.embed_async``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from llm_factory_core import EmbeddingRequest, LLMFactoryError
from llm_factory_core.providers import json_dumps as dumps

from .._errors import from_exception, from_validation_error
from ._common import JSON, json_object, reply, start

__all__ = ["create_embeddings_router"]


def create_embeddings_router() -> APIRouter:
    api = APIRouter()

    @api.post("/embeddings", summary="Create embeddings (OpenAI's embeddings API)")
    async def create(request: Request) -> Response:
        gateway, denied = await start(request, post=True)
        if denied is not None:
            return denied
        body = await json_object(request)
        if isinstance(body, Response):
            return body
        try:
            embedding_request = EmbeddingRequest.model_validate(body)
        except ValidationError as exc:
            return reply(from_validation_error(exc))
        try:
            result = await gateway.factory.embed_async(embedding_request)
        except LLMFactoryError as exc:
            return reply(from_exception(exc))
        return Response(dumps(result.model_dump(exclude_none=True)), media_type=JSON)

    return api
