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

__all__ = ["JSON", "json_object", "reply", "start"]

JSON = "application/json"


def reply(error: ErrorReply) -> Response:
    status, body, headers = error
    return Response(body, status_code=status, media_type=JSON, headers={k.decode(): v.decode() for k, v in headers})


async def start(request: Request, *, post: bool) -> tuple[Gateway, Response | None]:
    """The gateway, and an error reply when the caller may not use this route."""
    gateway = gateway_for(request.app)
    denied = check_access(gateway, request.scope["headers"], post=post)
    return gateway, None if denied is None else reply(denied)


async def json_object(request: Request) -> dict[str, Any] | Response:
    """The body as a JSON object, or the 400 reply saying what is wrong with it."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return reply(simple(400, "The body is not valid JSON.", "invalid_request_error", "invalid_json"))
    if not isinstance(body, dict):
        return reply(simple(400, "The body must be a JSON object.", "invalid_request_error", "invalid_json"))
    return body
