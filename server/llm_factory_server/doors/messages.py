"""``POST /messages`` and ``POST /messages/count_tokens``: Anthropic's Messages API over every
provider, a thin adapter from HTTP to the Messages dialect codec and the router.

The request becomes a ``ChatRequest`` (``llm_factory_core.dialects.anthropic``), so routing,
failover and health are exactly those of chat completions. When every deployment the model can
reach (its fallbacks included) speaks Messages itself (Claude), Anthropic's own fields (``thinking``,
``top_k``, server tools, ``anthropic-beta``...) ride unchanged; otherwise ``thinking`` becomes
``reasoning_effort`` and what has no effect is named in the ``x-llm-factory-ignored`` reply header.
Client keys come as ``x-api-key`` or ``Authorization: Bearer`` (``_access``); errors use Anthropic's
envelope and statuses (``overloaded_error`` 529 when no deployment is available). A stream's status
is chosen at its first content; a failure after that ends it with an ``error`` event.

``count_tokens`` asks the first deployment with a counter of its own (Claude on Anthropic's API);
elsewhere it answers a documented estimate (``estimate_input_tokens``) and says so in the
``x-llm-factory-token-count`` header.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llm_factory_core import ChatRequest, LLMFactoryError, NoDeploymentAvailableError
from llm_factory_core.dialects import MessagesEventStream, chat_request_from_messages, message_from_completion
from llm_factory_core.dialects.anthropic import estimate_input_tokens, new_message_id
from llm_factory_core.providers import json_dumps as dumps

from .._access import check_access
from .._errors import ErrorReply, from_exception
from .._gateway import Gateway, gateway_for
from ._common import StreamEnd, bounded_body, finish, first_chunk, relay

__all__ = ["ESTIMATE_HEADER", "NATIVE_PROVIDERS", "anthropic_error", "create_messages_router"]

log = logging.getLogger("llm_factory_server")

_JSON = "application/json"
NATIVE_PROVIDERS = frozenset({"claude"})
"""Providers whose upstream speaks Messages and reads Anthropic's own fields from request extras."""
ESTIMATE_HEADER = "x-llm-factory-token-count"
_ESTIMATE = "estimate: ceil(characters/4) + 4 per message + 1600 per image"

# Anthropic's error types by status (docs.claude.com/en/api/errors; anthropic-sdk-python types/shared).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_KEPT_HEADERS = frozenset({b"retry-after", b"www-authenticate"})


def _error_body(kind: str, message: str) -> bytes:
    data: bytes = dumps({"type": "error", "error": {"type": kind, "message": message}})
    return data


def _error_of(status: int, body: bytes) -> tuple[int, str, str]:
    """Anthropic's status, error type and message for one of the gateway's (OpenAI-shaped) errors.
    No deployment available (503) is Anthropic's "overloaded" (529), which its clients retry."""
    try:
        message = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = "The gateway failed to answer."
    if status == 503:
        status = 529
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return status, kind, message


def anthropic_error(reply: ErrorReply) -> Response:
    """One of the gateway's error replies in Anthropic's envelope (its retry-after kept)."""
    status, kind, message = _error_of(reply[0], reply[1])
    return _anthropic_reply(status, kind, message, reply)


def _failure(exc: LLMFactoryError) -> Response:
    """The reply for an error of the router. Every deployment cooling down or disabled is
    Anthropic's "overloaded" (529, with when to retry), as its API says when it has no capacity."""
    reply = from_exception(exc)
    status, kind, message = _error_of(reply[0], reply[1])
    if isinstance(exc, NoDeploymentAvailableError):
        status, kind = 529, "overloaded_error"
    return _anthropic_reply(status, kind, message, reply)


def _anthropic_reply(status: int, kind: str, message: str, reply: ErrorReply) -> Response:
    headers = {k.decode(): v.decode() for k, v in reply[2] if k in _KEPT_HEADERS}
    return Response(_error_body(kind, message), status_code=status, media_type=_JSON, headers=headers)


def _invalid(message: str) -> Response:
    return Response(_error_body("invalid_request_error", message), status_code=400, media_type=_JSON)


def _reachable(gateway: Gateway, model: str) -> list[Any]:
    """The deployments a request for ``model`` can reach: its own, then its fallbacks'."""
    router = gateway.factory.router
    names = [model, *router.settings.fallbacks.get(model, [])]
    return [d for name in names for d in router.groups.get(name, [])]


def _native(gateway: Gateway, model: str) -> bool:
    deployments = _reachable(gateway, model)
    return bool(deployments) and all(d.provider_key in NATIVE_PROVIDERS for d in deployments)


def _betas(request: Request) -> list[str]:
    values = request.headers.getlist("anthropic-beta")
    return [b.strip() for value in values for b in value.split(",") if b.strip()]


class _Read(NamedTuple):
    gateway: Gateway
    body: dict[str, Any]
    chat: ChatRequest
    headers: dict[str, str]
    size: int
    """The body's bytes (what a stream the client leaves early is billed by)."""


async def _read(request: Request, *, count_only: bool) -> _Read | Response:
    """Access, the body, and its chat request with the reply headers; or the error reply."""
    gateway = gateway_for(request.app)
    denied = check_access(gateway, request.scope["headers"], post=True)
    if denied is not None:
        return anthropic_error(denied)
    limit = gateway.settings.max_body_bytes
    raw = await bounded_body(request, limit)
    if raw is None:
        message = f"The request body is larger than this gateway accepts ({limit} bytes; server.max_body_bytes)."
        return Response(_error_body("request_too_large", message), status_code=413, media_type=_JSON)
    try:
        body = json.loads(raw)
    except ValueError:
        return _invalid("The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _invalid("model: Field required (a configured model name)")
    try:
        parsed = chat_request_from_messages(
            body, native=_native(gateway, model), betas=_betas(request), count_only=count_only
        )
    except LLMFactoryError as exc:
        return _failure(exc)
    headers = {"x-llm-factory-ignored": ",".join(parsed.ignored)} if parsed.ignored else {}
    return _Read(gateway, body, parsed.chat, headers, len(raw))


def create_messages_router() -> APIRouter:
    api = APIRouter()

    @api.post("/messages", summary="Create a message (Anthropic's Messages API)")
    async def create(request: Request) -> Response:
        read = await _read(request, count_only=False)
        if isinstance(read, Response):
            return read
        gateway, chat, headers = read.gateway, read.chat, read.headers
        # The key's model list, limits and budget (``ops``), as on every door.
        ticket = await gateway.ops.admit(request.scope["headers"], chat.model, "messages", read.size)
        if isinstance(ticket, tuple):
            return anthropic_error(ticket)
        if chat.stream:
            return await _stream(gateway, chat, headers, ticket)
        started = time.monotonic()
        try:
            completion = await gateway.factory.chat_async(chat)
        except LLMFactoryError as exc:
            reply = _failure(exc)
            finish(gateway, ticket, chat, None, reply.status_code, started, None)
            return reply
        finish(gateway, ticket, chat, completion.deployment, 200, started, completion.usage)
        return Response(dumps(message_from_completion(completion)), media_type=_JSON, headers=headers)

    @api.post("/messages/count_tokens", summary="Count a message's input tokens (Anthropic's API)")
    async def count_tokens(request: Request) -> Response:
        read = await _read(request, count_only=True)
        if isinstance(read, Response):
            return read
        gateway, body, headers = read.gateway, read.body, read.headers
        ticket = await gateway.ops.admit(request.scope["headers"], read.chat.model, "messages.count_tokens")
        if isinstance(ticket, tuple):
            return anthropic_error(ticket)
        started = time.monotonic()
        try:
            counted = await _count(gateway, read.chat)
        except LLMFactoryError as exc:
            reply = _failure(exc)
            finish(gateway, ticket, read.chat, None, reply.status_code, started, None)
            return reply
        finish(gateway, ticket, read.chat, None, 200, started, None)
        if counted is None:
            counted, headers[ESTIMATE_HEADER] = estimate_input_tokens(body), _ESTIMATE
        else:
            headers[ESTIMATE_HEADER] = "provider"
        return Response(dumps({"input_tokens": counted}), media_type=_JSON, headers=headers)

    return api


async def _count(gateway: Gateway, chat: ChatRequest) -> int | None:
    """The first counter a deployment of the model has (a provider's ``count_tokens``), or None."""
    providers = gateway.factory.providers()
    for deployment in _reachable(gateway, str(chat.model)):
        counter = getattr(providers.get(deployment.name), "count_tokens", None)
        if counter is not None:
            counted = await counter(chat)
            if counted is not None:
                return int(counted)
    return None


async def _stream(gateway: Gateway, chat: ChatRequest, headers: dict[str, str], ticket: Any) -> Response:
    started = time.monotonic()
    chunks = gateway.factory.stream_async(chat)
    try:  # the router yields nothing before the first content: until then, a plain error reply
        first = await first_chunk(chunks)
    except LLMFactoryError as exc:
        reply = _failure(exc)
        finish(gateway, ticket, chat, None, reply.status_code, started, None, stream=True)
        return reply
    model = first.model if first is not None else str(chat.model or "")
    events = MessagesEventStream(message_id=new_message_id(), model=model)

    def fail(exc: LLMFactoryError) -> tuple[int, list[dict[str, Any]]]:  # Anthropic's error event
        log.warning("a /v1/messages stream failed after it started: %s", exc)
        status, kind, message = _error_of(*from_exception(exc)[:2])
        return status, events.fail(kind, message)

    def record(end: StreamEnd) -> None:
        finish(gateway, ticket, chat, end.deployment, end.status, started, end.usage, stream=True, chunks=end.chunks)

    return relay(chunks, first, events, headers, fail=fail, record=record)
