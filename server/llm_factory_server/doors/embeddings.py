"""``POST /embeddings``: OpenAI's embeddings API over every provider that serves embeddings, with
the routing, balancing and failover of chat (``factory.embed_async``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from llm_factory_core import CallInfo, EmbeddingRequest, LLMFactoryError
from llm_factory_core.providers import json_dumps as dumps

from .._errors import from_exception, from_validation_error
from ._common import JSON, read_post, reply

__all__ = ["create_embeddings_router"]


def create_embeddings_router() -> APIRouter:
    api = APIRouter()

    @api.post("/embeddings", summary="Create embeddings (OpenAI's embeddings API)")
    async def create(request: Request) -> Response:
        read = await read_post(request)
        if isinstance(read, Response):
            return read
        gateway, body, size = read
        try:
            embedding_request = EmbeddingRequest.model_validate(body)
        except ValidationError as exc:
            return reply(from_validation_error(exc))
        started = time.monotonic()
        ticket = await gateway.ops.admit(request.scope["headers"], embedding_request.model, "embeddings", size)
        if isinstance(ticket, tuple):
            return reply(ticket)
        status, result, info = 200, None, CallInfo()
        factory = gateway.factory
        try:  # the router itself, as the chat endpoint does: its CallInfo names the deployment
            result = await factory.router.embed(embedding_request, factory.providers(), info=info)
            result = result.packed(embedding_request.encoding_format)
        except LLMFactoryError as exc:
            error = from_exception(exc)
            status = error[0]
            return reply(error)
        finally:
            gateway.ops.finish(
                ticket,
                model=embedding_request.model,
                deployment=info.deployment.name if info.deployment is not None else None,
                stream=False,
                status=status,
                latency=time.monotonic() - started,
                usage=result.usage if result is not None else None,
            )
        return Response(dumps(result.model_dump(exclude_none=True)), media_type=JSON)

    return api
