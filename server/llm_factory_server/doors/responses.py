"""``POST /responses``, ``GET`` and ``DELETE /responses/{id}``: OpenAI's Responses API over every
provider, a thin adapter from HTTP to the Responses dialect codec and the router.

The request becomes a ``ChatRequest`` (``llm_factory_core.dialects.responses``), so routing,
failover and health are exactly those of chat completions. A stream follows the same contract:
the status is chosen at the first content (a failure before it is a JSON error with its status),
and a failure after it ends the stream with ``response.failed``. ``store`` (default true, as
OpenAI's) keeps the response and its conversation for ``previous_response_id``; a stored response
belongs to the client key that made it. Fields accepted without effect are named in the
``x-llm-factory-ignored`` reply header.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llm_factory_core import LLMFactoryError
from llm_factory_core._shared_state import SharedHealth
from llm_factory_core.dialects import (
    ResponsesEventStream,
    chat_request_from_responses,
    new_response_id,
    output_items_from_completion,
    response_object,
)
from llm_factory_core.dialects.responses import IGNORED_FIELDS, input_items, usage_from_chat
from llm_factory_core.providers import json_dumps as dumps

from .._access import presented_key
from .._errors import from_exception, simple
from .._gateway import Gateway, gateway_for
from ._common import StreamEnd, finish, first_chunk, read_post, relay, reply, start
from ._response_store import RedisResponseStore, ResponseStore, owner_of

__all__ = ["create_responses_router"]

_JSON = "application/json"
_STORE_ATTR = "llm_factory_responses"


def _store(request: Request) -> ResponseStore | RedisResponseStore:
    store = getattr(request.app.state, _STORE_ATTR, None)
    if store is None:
        gateway: Gateway = gateway_for(request.app)
        health = gateway.factory.health
        if isinstance(health, SharedHealth):  # a fleet: every gateway must find every response
            store = RedisResponseStore(health.url, health.prefix)
        else:
            store = ResponseStore(gateway.factory.config.server.get("responses_db"))
        setattr(request.app.state, _STORE_ATTR, store)
    return store


def _owner(gateway: Gateway, request: Request) -> str:
    return owner_of(presented_key(request.scope["headers"])) if gateway.settings.api_keys else ""


def _not_found(response_id: str) -> Response:
    shown = response_id[:100]
    return reply(simple(404, f"No response found with id {shown!r}.", "invalid_request_error", "not_found", "id"))


def create_responses_router() -> APIRouter:
    api = APIRouter()

    @api.post("/responses", summary="Create a model response (OpenAI's Responses API)")
    async def create(request: Request) -> Response:
        read = await read_post(request)
        if isinstance(read, Response):
            return read
        gateway, body, size = read
        store, owner = _store(request), _owner(gateway, request)
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous:
            found = await store.get(str(previous), owner)
            if found is None:
                return _not_found(str(previous))
            history = found[1]
        try:
            chat = chat_request_from_responses(body, history)
        except LLMFactoryError as exc:
            return reply(from_exception(exc))
        except ValueError as exc:  # pydantic: a bad value (temperature out of range...)
            message = str(exc).splitlines()[0:3]
            return reply(simple(400, " ".join(message), "invalid_request_error", "invalid_value"))
        headers = {}
        ignored = sorted(IGNORED_FIELDS & set(body))
        if ignored:
            headers["x-llm-factory-ignored"] = ",".join(ignored)
        conversation = [*history, *input_items(body)]
        response_id, created_at = new_response_id(), int(time.time())
        keep = body.get("store", True) is not False
        ticket = await gateway.ops.admit(request.scope["headers"], chat.model, "responses", size)
        if isinstance(ticket, tuple):
            return reply(ticket)
        if not chat.stream:
            started = time.monotonic()
            try:
                completion = await gateway.factory.chat_async(chat)
            except LLMFactoryError as exc:
                error = from_exception(exc)
                finish(gateway, ticket, chat, None, error[0], started, None)
                return reply(error)
            finish(gateway, ticket, chat, completion.deployment, 200, started, completion.usage)
            output = output_items_from_completion(completion)
            usage = completion.usage.model_dump(exclude_none=True) if completion.usage else None
            result = response_object(
                body,
                response_id=response_id,
                created_at=created_at,
                model=completion.model,
                output=output,
                usage=usage_from_chat(usage),
                finish_reason=completion.choices[0].finish_reason,
            )
            if keep:
                await store.put(result, [*conversation, *output], owner)
            return Response(dumps(result), media_type=_JSON, headers=headers)
        return await _stream(
            gateway, store, owner, body, chat, response_id, created_at, conversation, keep, headers, ticket
        )

    @api.get("/responses/{response_id}", summary="A stored response")
    async def get(response_id: str, request: Request) -> Response:
        gateway, denied = await start(request, post=False)
        if denied is not None:
            return denied
        found = await _store(request).get(response_id, _owner(gateway, request))
        return _not_found(response_id) if found is None else Response(dumps(found[0]), media_type=_JSON)

    @api.delete("/responses/{response_id}", summary="Delete a stored response")
    async def delete(response_id: str, request: Request) -> Response:
        gateway, denied = await start(request, post=False)
        if denied is not None:
            return denied
        if not await _store(request).delete(response_id, _owner(gateway, request)):
            return _not_found(response_id)
        return Response(dumps({"id": response_id, "object": "response.deleted", "deleted": True}), media_type=_JSON)

    return api


async def _stream(
    gateway: Gateway,
    store: ResponseStore | RedisResponseStore,
    owner: str,
    body: dict[str, Any],
    chat: Any,
    response_id: str,
    created_at: int,
    conversation: list[dict[str, Any]],
    keep: bool,
    headers: dict[str, str],
    ticket: Any,
) -> Response:
    started = time.monotonic()
    chunks = gateway.factory.stream_async(chat)
    try:  # the router yields nothing before the first content: until then, a plain error reply
        first = await first_chunk(chunks)
    except LLMFactoryError as exc:
        error = from_exception(exc)
        finish(gateway, ticket, chat, None, error[0], started, None, stream=True)
        return reply(error)
    model = first.model if first is not None else str(chat.model or "")
    events = ResponsesEventStream(body, response_id=response_id, created_at=created_at, model=model)

    def fail(exc: LLMFactoryError) -> tuple[int, list[dict[str, Any]]]:  # ``response.failed``
        error = json.loads(from_exception(exc)[1])["error"]
        failure = {"code": error.get("code") or "server_error", "message": error.get("message", "")}
        return exc.http_status, events.fail(failure)

    async def put() -> None:
        await store.put(events.response, [*conversation, *events.output], owner)

    def record(end: StreamEnd) -> None:
        finish(gateway, ticket, chat, end.deployment, end.status, started, end.usage, stream=True, chunks=end.chunks)

    return relay(chunks, first, events, headers, fail=fail, record=record, after=put if keep else None)
