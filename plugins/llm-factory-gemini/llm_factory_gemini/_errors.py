"""Gemini error body -> typed error class, message and details (a pure function).

Gemini's body is ``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED",
"details": [...]}}`` (a one-element list of that on its OpenAI-compatible endpoint). Two traps:
an invalid key is a 400 ``INVALID_ARGUMENT`` whose ``ErrorInfo.reason`` is ``API_KEY_INVALID``,
and the retry hint of a 429 is ``RetryInfo.retryDelay`` in the body ("7s"), not a header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llm_factory_core import (
    AuthenticationError,
    ContextLengthError,
    InsufficientQuotaError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from llm_factory_core.providers import error_for_status, json_loads, parse_retry_after

__all__ = ["EncodeError", "classify_error", "parse_duration"]


class EncodeError(ValueError):
    """The request cannot be expressed for Gemini (the provider reports it as a bad request)."""


_KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED"}
)
_RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED", "UNKNOWN", "CANCELLED"})
_CONTEXT_RE = re.compile(
    r"input token count|exceeds the maximum number of tokens|context (?:length|window)|too many tokens"
    r"|token limit|prompt is too long|input (?:is )?too long",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_STATUS_OF_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON form (``"7s"``, ``"2.500s"``) in seconds."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def _error_object(body: bytes | Any) -> dict[str, Any]:
    data = body
    if isinstance(body, bytes | str):
        try:
            data = json_loads(body) if body.strip() else {}
        except ValueError:
            return {}
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    error = data.get("error", data) if isinstance(data, dict) else {}
    return error if isinstance(error, dict) else {"message": str(error)}


def classify_error(
    status: int | None, headers: Mapping[str, str], body: bytes | Any
) -> tuple[type[ProviderError], str, dict[str, Any]]:
    """Class, message and keyword arguments (status, code, retry_after) for an error reply or an
    error object inside a stream (``status`` None: use the body's ``code``)."""
    error = _error_object(body)
    code = error.get("code")
    if status is None:
        status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 500
    canonical = str(error.get("status") or _STATUS_OF_CODE.get(status, ""))
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
    message = str(error.get("message") or raw or f"HTTP {status}")  # error() masks, then caps
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    reasons = {str(d["reason"]) for d in details if d.get("reason")}
    retry_after = parse_retry_after(headers)
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            retry_after = parse_duration(detail.get("retryDelay")) or retry_after

    cls: type[ProviderError]
    if reasons & _KEY_REASONS or canonical in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        cls = AuthenticationError
    elif status == 402 or canonical == "FAILED_PRECONDITION":
        cls = InsufficientQuotaError  # billing / free tier unavailable: this key cannot serve
    elif canonical == "RESOURCE_EXHAUSTED" or status == 429:
        cls = RateLimitError
    elif canonical in _RETRYABLE or status >= 500:
        cls = ServerError
    elif canonical == "INVALID_ARGUMENT" and _CONTEXT_RE.search(message):
        cls = ContextLengthError
    else:
        cls = error_for_status(status)  # NOT_FOUND, other 4xx: the request is the problem
    code_name = next(iter(sorted(reasons & _KEY_REASONS)), None) or canonical or None
    return cls, message, {"status": status, "code": code_name, "retry_after": retry_after}
