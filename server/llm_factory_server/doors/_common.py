"""What every door does first: check access, read the JSON object body; and how it answers an
error (OpenAI's envelope, pre-encoded)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from .._access import check_access
from .._errors import ErrorReply, simple
from .._gateway import Gateway, gateway_for

__all__ = ["JSON", "bounded_body", "json_object", "reply", "start"]

JSON = "application/json"


def reply(error: ErrorReply) -> Response:
    status, body, headers = error
    return Response(body, status_code=status, media_type=JSON, headers={k.decode(): v.decode() for k, v in headers})


async def start(request: Request, *, post: bool) -> tuple[Gateway, Response | None]:
    """The gateway, and an error reply when the caller may not use this route."""
    gateway = gateway_for(request.app)
    denied = check_access(gateway, request.scope["headers"], post=post)
    return gateway, None if denied is None else reply(denied)


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (read no further than that)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


async def json_object(request: Request) -> dict[str, Any] | Response:
    """The body as a JSON object (at most ``server.max_body_bytes``), or the 413 / 400 reply
    saying what is wrong with it."""
    limit = gateway_for(request.app).settings.max_body_bytes
    raw = await bounded_body(request, limit)
    if raw is None:
        message = f"The request body is larger than this gateway accepts ({limit} bytes; server.max_body_bytes)."
        return reply(simple(413, message, "invalid_request_error", "request_too_large"))
    try:
        body = json.loads(raw)
    except ValueError:
        return reply(simple(400, "The body is not valid JSON.", "invalid_request_error", "invalid_json"))
    if not isinstance(body, dict):
        return reply(simple(400, "The body must be a JSON object.", "invalid_request_error", "invalid_json"))
    return body
