"""The mountable API: ``app.include_router(router, prefix="/v1")``.

Paths inside the router: ``POST /chat/completions``, ``GET /models``, ``GET /models/{id}``,
``GET /providers/status``. Every reply is a plain Starlette ``Response`` of pre-encoded JSON, and
errors use OpenAI's envelope even in a host app (no exception handler of ours is needed there).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llm_factory_core import ModelNotFoundError
from llm_factory_core.providers import json_dumps as dumps

from ._access import check_access
from ._chat import ChatCompletions
from ._errors import ErrorReply, from_exception
from ._gateway import Gateway, gateway_for
from .doors import create_embeddings_router, create_messages_router, create_responses_router

__all__ = ["create_router", "router"]

JSON = "application/json"


def json_response(data: object, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type=JSON)


def error_response(reply: ErrorReply) -> Response:
    status, body, headers = reply
    return Response(body, status_code=status, media_type=JSON, headers={k.decode(): v.decode() for k, v in headers})


def _denied(gateway: Gateway, request: Request) -> Response | None:
    denied = check_access(gateway, request.scope["headers"], post=request.method == "POST")
    return None if denied is None else error_response(denied)


def _model(gateway: Gateway, entry: dict[str, object]) -> dict[str, object]:
    return {"id": entry["id"], "object": "model", "created": gateway.started, "owned_by": entry["owned_by"]}


def create_router() -> APIRouter:
    """A fresh router (``router`` is one made at import)."""
    api = APIRouter()
    # A plain ASGI route: the hot path skips FastAPI's parameter solving and response validation.
    # (Starlette runs a non-function endpoint as an ASGI app; the annotation only knows functions.)
    api.add_route("/chat/completions", ChatCompletions(), methods=["POST"], name="chat_completions")  # type: ignore[arg-type]
    api.include_router(create_responses_router())
    api.include_router(create_messages_router())
    api.include_router(create_embeddings_router())

    @api.get("/models", summary="List the configured model names (OpenAI's list shape)")
    async def list_models(request: Request) -> Response:
        gateway = gateway_for(request.app)
        if (denied := _denied(gateway, request)) is not None:
            return denied
        data: dict[str, object] = {
            "object": "list",
            "data": [_model(gateway, m) for m in gateway.factory.models()],
        }
        if (hint := gateway.models_hint()) is not None:
            data["message"] = hint
        return json_response(data)

    @api.get("/models/{model_id:path}", summary="One configured model name")
    async def get_model(model_id: str, request: Request) -> Response:
        gateway = gateway_for(request.app)
        if (denied := _denied(gateway, request)) is not None:
            return denied
        for entry in gateway.factory.models():
            if entry["id"] == model_id:
                return json_response(_model(gateway, entry))
        return error_response(from_exception(ModelNotFoundError(model_id, gateway.factory.model_names)))

    @api.get("/providers/status", summary="Every deployment's state (keys masked)")
    async def providers_status(request: Request) -> Response:
        gateway = gateway_for(request.app)
        if (denied := _denied(gateway, request)) is not None:
            return denied
        data = [s.model_dump(mode="json") for s in gateway.factory.status()]
        body: dict[str, object] = {"object": "list", "data": data}
        if (hint := gateway.models_hint()) is not None:
            body["message"] = hint
        return json_response(body)

    return api


router = create_router()
