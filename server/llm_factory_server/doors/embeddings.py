"""``POST /embeddings``: OpenAI's embeddings API over every provider that serves embeddings, with
the routing, balancing and failover of chat (``factory.embed_async``)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from llm_factory_core import EmbeddingRequest, LLMFactoryError
from llm_factory_core.providers import json_dumps as dumps

from .._access import check_access
from .._errors import ErrorReply, from_exception, from_validation_error, simple
from .._gateway import gateway_for

__all__ = ["create_embeddings_router"]

_JSON = "application/json"


def _reply(reply: ErrorReply) -> Response:
    status, body, headers = reply
    return Response(body, status_code=status, media_type=_JSON, headers={k.decode(): v.decode() for k, v in headers})


def create_embeddings_router() -> APIRouter:
    api = APIRouter()

    @api.post("/embeddings", summary="Create embeddings (OpenAI's embeddings API)")
    async def create(request: Request) -> Response:
        gateway = gateway_for(request.app)
        denied = check_access(gateway, request.scope["headers"], post=True)
        if denied is not None:
            return _reply(denied)
        try:
            body = json.loads(await request.body())
            embedding_request = EmbeddingRequest.model_validate(body)
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                return _reply(from_validation_error(exc))
            return _reply(simple(400, "The body is not valid JSON.", "invalid_request_error", "invalid_json"))
        try:
            result = await gateway.factory.embed_async(embedding_request)
        except LLMFactoryError as exc:
            return _reply(from_exception(exc))
        return Response(dumps(result.model_dump(exclude_none=True)), media_type=_JSON)

    return api
