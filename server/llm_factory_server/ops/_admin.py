"""The admin API, under ``/admin`` (the admin key, ``server.admin_key``, as a Bearer token):

- ``POST /admin/keys`` ``{"name", "models", "rpm", "tpm", "budget", "budget_period", "expires_at"}``:
  a new client key, shown in this reply only;
- ``GET /admin/keys``, ``GET /admin/keys/{id}``: keys with their limits and current use and spend;
- ``DELETE /admin/keys/{id}``: revoke (at once in this process, within a second in the others);
- ``GET /admin/usage?group_by=key|model|day&since=&until=&key_id=``: totals from the usage records.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from .._access import presented_key
from .._errors import from_validation_error, simple
from .._gateway import Gateway, gateway_for
from .._reload import admin_reload
from ..doors._common import reply
from ._keys import KeySpec
from ._queries import GROUPS, usage_totals

__all__ = ["create_admin_router"]

_JSON = "application/json"


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type=_JSON)


def _admin(request: Request) -> tuple[Gateway, Response | None]:
    gateway = gateway_for(request.app)
    ops = gateway.ops
    if not ops.managed:
        return gateway, reply(
            simple(
                403,
                "The admin API is off: set server.admin_key (or LLM_FACTORY_ADMIN_KEY) to manage client keys.",
                "invalid_request_error",
                "admin_api_disabled",
            )
        )
    presented = presented_key(request.scope["headers"])
    if not ops.is_admin(presented):
        status, body, _ = simple(
            401,
            "The admin API needs the admin key (server.admin_key) as 'Authorization: Bearer <key>'.",
            "invalid_request_error",
            "invalid_api_key",
        )
        return gateway, Response(body, status_code=status, media_type=_JSON, headers={"www-authenticate": "Bearer"})
    return gateway, None


def _not_found(key_id: str) -> Response:
    return reply(simple(404, f"No client key with id {key_id[:60]!r}.", "invalid_request_error", "not_found", "id"))


def _float(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a Unix time in seconds, not {value[:30]!r}") from None


def create_admin_router() -> APIRouter:
    api = APIRouter(prefix="/admin", include_in_schema=False)

    @api.post("/keys")
    async def create(request: Request) -> Response:
        gateway, denied = _admin(request)
        if denied is not None:
            return denied
        try:
            spec = KeySpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return reply(from_validation_error(exc))
        try:
            key, record = await anyio.to_thread.run_sync(gateway.ops.keys.create, spec)
        except ValueError as exc:
            return reply(simple(400, str(exc), "invalid_request_error", "invalid_value", "expires_at"))
        return _json({"key": key, **record.public()}, 201)

    @api.get("/keys")
    async def list_keys(request: Request) -> Response:
        gateway, denied = _admin(request)
        if denied is not None:
            return denied
        records = await anyio.to_thread.run_sync(gateway.ops.keys.all)
        return _json({"data": [{**r.public(), **gateway.ops.current(r)} for r in records]})

    @api.get("/keys/{key_id}")
    async def get_key(key_id: str, request: Request) -> Response:
        gateway, denied = _admin(request)
        if denied is not None:
            return denied
        record = await anyio.to_thread.run_sync(gateway.ops.keys.get, key_id)
        if record is None:
            return _not_found(key_id)
        return _json({**record.public(), **gateway.ops.current(record)})

    @api.post("/reload")
    async def reload(request: Request) -> Response:
        gateway, denied = _admin(request)
        return denied if denied is not None else admin_reload(gateway)  # ``.._reload``

    @api.delete("/keys/{key_id}")
    async def revoke(key_id: str, request: Request) -> Response:
        gateway, denied = _admin(request)
        if denied is not None:
            return denied
        record = await anyio.to_thread.run_sync(gateway.ops.keys.revoke, key_id)
        return _not_found(key_id) if record is None else _json(record.public())

    @api.get("/usage")
    async def usage(request: Request) -> Response:
        gateway, denied = _admin(request)
        if denied is not None:
            return denied
        group_by = request.query_params.get("group_by", "key")
        try:
            since, until = _float(request, "since"), _float(request, "until")
            if group_by not in GROUPS:
                raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
        except ValueError as exc:
            return reply(simple(400, str(exc), "invalid_request_error", "invalid_value"))
        key_id = request.query_params.get("key_id") or None
        rows = await anyio.to_thread.run_sync(
            lambda: usage_totals(gateway.ops.db_path, group_by, since=since, until=until, key_id=key_id)
        )
        return _json({"group_by": group_by, "since": since, "until": until or time.time(), "data": rows})

    return api
