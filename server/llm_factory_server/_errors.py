"""Errors in OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``.

Pure functions from an exception to (status, body bytes, extra headers); the endpoints send them.
Every message comes from the core's error classes, which name deployments with masked keys only.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from llm_factory_core import (
    AllDeploymentsFailedError,
    LLMFactoryError,
    NoDeploymentAvailableError,
    ProviderError,
)
from llm_factory_core.providers import json_dumps as dumps

__all__ = ["ErrorReply", "error_body", "from_exception", "from_validation_error", "simple"]

ErrorReply = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""Status, JSON body, extra headers."""

# What clients can branch on when every deployment failed (the core leaves ``code`` unset).
_ALL_FAILED_CODES = {429: "rate_limit_exceeded", 503: "no_deployment_available", 504: "upstream_timeout"}
_TYPE_BY_STATUS = {429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None, **extra: Any) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code, **extra}})


def simple(status: int, message: str, type_: str, code: str | None = None, param: str | None = None) -> ErrorReply:
    return status, error_body(message, type_, param=param, code=code), []


def _retry_after(seconds: float | None) -> list[tuple[bytes, bytes]]:
    if seconds is None:
        return []
    # Whole seconds (RFC 9110); never 0, which would invite an immediate hammering retry.
    return [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]


def from_exception(exc: LLMFactoryError) -> ErrorReply:
    """The reply for any llm-factory error."""
    status = exc.http_status
    if isinstance(exc, AllDeploymentsFailedError):
        attempts = [a.describe() for a in exc.attempts]
        code = exc.code or _ALL_FAILED_CODES.get(status, "upstream_error")
        type_ = _TYPE_BY_STATUS.get(status, exc.error_type)
        last = exc.last_error
        if status == 400 and last is not None:  # the request was the problem: say what upstream said
            type_, code = last.error_type, last.code or code
        headers = _retry_after(exc.retry_after) if status in (429, 503) else []
        if isinstance(exc, NoDeploymentAvailableError) and status == 503:
            code = "no_deployment_available"
        return status, error_body(exc.message, type_, param=exc.param, code=code, attempts=attempts), headers
    if isinstance(exc, ProviderError):
        headers = _retry_after(exc.retry_after) if status == 429 else []
        return status, error_body(str(exc), exc.error_type, param=exc.param, code=exc.code), headers
    return status, error_body(exc.message, exc.error_type, param=exc.param, code=exc.code), []


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _param(error: Any) -> str | None:
    # The request model's own checks of one key (``extra_body.stream``, a reserved field) put the
    # key in ``ctx``: name it, as OpenAI names the parameter.
    key = (error.get("ctx") or {}).get("key")
    loc = tuple(error["loc"])
    return _loc((*loc, key) if isinstance(key, str) else loc) or None


def _part(error: Any) -> str:
    if isinstance((error.get("ctx") or {}).get("key"), str):
        return str(error["msg"])  # it names the field itself
    return f"{_loc(error['loc']) or 'body'}: {error['msg']}"


def from_validation_error(exc: ValidationError) -> ErrorReply:
    """400 (not FastAPI's 422) naming each invalid field, as OpenAI does."""
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return simple(400, f"The request body is not valid JSON: {errors[0]['msg']}", "invalid_request_error")
    if errors and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
        return simple(400, "The request body must be a JSON object.", "invalid_request_error")
    parts = [_part(e) for e in errors[:5]]
    param = _param(errors[0]) if errors else None
    code = "missing_required_parameter" if errors and errors[0]["type"] == "missing" else "invalid_value"
    return simple(400, "Invalid request: " + "; ".join(parts), "invalid_request_error", code, param)
