"""``POST /v1/chat/completions`` in the app's OpenAPI document.

The endpoint is a plain ASGI route (the hot path skips FastAPI's request parsing), so FastAPI does
not describe it; this adds it from the core's own models, so clients, docs and schema-driven fuzzers
see the real request and response shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from llm_factory_core import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["document_chat_completions"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ERROR_STATUSES = {
    "400": "Invalid body or parameters; a request an upstream rejected (content filter, context length)",
    "401": "Missing or wrong client key",
    "404": "Unknown model",
    "413": "Body too large",
    "429": "Every deployment of the model is rate-limited (see Retry-After)",
    "502": "Every upstream attempt failed (each attempt summarised)",
    "503": "No deployment available",
    "504": "Upstreams did not answer in time",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document_chat_completions(app: FastAPI, path: str = "/v1/chat/completions") -> None:
    """Make ``app.openapi()`` include the chat completions operation at ``path``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorResponse"] = _ERROR
        error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        responses: dict[str, Any] = {
            "200": {
                "description": "A chat completion, or with stream=true a text/event-stream of chunks ending in [DONE]",
                "content": {
                    "application/json": {"schema": _schema(ChatCompletion, components)},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            }
        }
        responses.update({s: {"description": d, "content": error_ref} for s, d in _ERROR_STATUSES.items()})
        _schema(ChatCompletionChunk, components)
        document.setdefault("paths", {})[path] = {
            "post": {
                "summary": "Create a chat completion (OpenAI's request body plus load_balance_strategy)",
                "operationId": "create_chat_completion",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(ChatRequest, components)}},
                },
                "responses": responses,
            }
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
