"""DashScope native error bodies -> typed errors (pure functions, no I/O).

Native error body: ``{"code": "Throttling.RateQuota", "message": "...", "request_id": "..."}``
(the SDK also accepts ``msg``). The same body arrives as an ``event:error`` inside a 200 stream,
with the real status in a ``:HTTP_STATUS/429`` comment line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llm_factory_core import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from llm_factory_core.providers import (
    classify_openai_error,
    error_for_status,
    json_dumps,
    json_loads,
    parse_retry_after,
)

__all__ = ["classify_native_error", "refine_compatible_error", "status_for_code", "unwrap_sse_error"]

# "Range of input length should be [1, 30720]", "Input length exceeds the maximum ...", and the
# OpenAI-style phrasings a proxy in front of DashScope may use.
_CONTEXT_RE = re.compile(
    r"input length|context length|maximum context|context window|too many tokens|"
    r"prompt is too long|input is too long|exceeds the maximum|max_input_tokens",
    re.IGNORECASE,
)
_QUOTA_CODES = ("Arrearage", "Throttling.AllocationQuota", "insufficient_quota")
_AUTH_CODES = ("InvalidApiKey", "AccessDenied", "Model.AccessDenied", "Unauthorized", "invalid_api_key")
_BAD_REQUEST_CODES = ("InvalidParameter", "BadRequest", "InvalidURL", "ModelNotFound", "Model.NotFound")


def status_for_code(code: Any) -> int:
    """An HTTP status for an error that came without one: a native in-stream error missing its
    ``:HTTP_STATUS`` line, or a compatible-mode ``data: {"error": ...}`` event (native codes and
    compatible mode's lower-case ones)."""
    code = str(code or "")
    if code.startswith(("Throttling", "limit_", "insufficient_quota")):
        return 429
    if code.startswith(_AUTH_CODES):
        return 403 if code.startswith(("AccessDenied", "Model.AccessDenied")) else 401
    if code.startswith(
        ("Arrearage", "DataInspectionFailed", "data_inspection", "invalid_parameter", *_BAD_REQUEST_CODES)
    ):
        return 400
    return 500


def unwrap_sse_error(status: int, body: bytes) -> tuple[int, bytes, bool]:
    """An error reply that is an SSE frame (``id:1`` / ``event:error`` / ``:HTTP_STATUS/400`` /
    ``data:{...}``, DashScope's answer to a streamed request) -> the status its
    ``:HTTP_STATUS`` comment names (else the HTTP one), the JSON of its ``data`` lines, and
    whether that JSON is DashScope's native ``{"code", "message"}`` shape. Any other body is
    returned as it is."""
    text = body.decode("utf-8", "replace")
    if "data:" not in text or text.lstrip().startswith(("{", "[")):
        return status, body, _native_shaped(body)
    data: list[str] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith(":") and line[1:].strip().startswith("HTTP_STATUS/"):
            value = line[1:].strip().partition("/")[2].strip()
            if value.isdigit() and int(value) >= 400:
                status = int(value)
    payload = "\n".join(data).encode()
    return status, payload, _native_shaped(payload)


def _native_shaped(body: bytes) -> bool:
    try:
        data = json_loads(body) if body.strip() else None
    except ValueError:
        return False
    return isinstance(data, dict) and "error" not in data and bool(data.get("code"))


def refine_compatible_error(cls: type[ProviderError], message: str) -> type[ProviderError]:
    """Compatible mode's errors go through the core's OpenAI classifier; DashScope words a
    context overflow its own way ("Range of input length should be [1, 30720]")."""
    if cls is BadRequestError and _CONTEXT_RE.search(message):
        return ContextLengthError
    return cls


def _class_for(status: int, code: str, message: str) -> type[ProviderError]:
    if code.startswith(_QUOTA_CODES):
        return InsufficientQuotaError  # money or allocated quota spent: this key is done for now
    if code.startswith("Throttling") or code == "limit_requests":
        return RateLimitError
    if code.startswith(_AUTH_CODES):
        return AuthenticationError
    if code.startswith("DataInspectionFailed") or code == "data_inspection_failed":
        return ContentFilterError  # the same text is rejected by every deployment
    if status >= 500:
        return ServerError
    # "InternalError.Algo.InvalidParameter" is a bad request despite its prefix.
    if status < 500 and ("InvalidParameter" in code or code.startswith(_BAD_REQUEST_CODES)):
        return ContextLengthError if _CONTEXT_RE.search(message) else BadRequestError
    if code.startswith("InternalError"):
        return ServerError
    cls = error_for_status(status)
    if cls is BadRequestError and _CONTEXT_RE.search(message):
        return ContextLengthError
    return cls


def classify_native_error(
    status: int, headers: Mapping[str, str], body: bytes | Mapping[str, Any]
) -> tuple[type[ProviderError], str, dict[str, Any]]:
    """Class, message and keyword arguments for a native error reply or in-stream error event.
    An OpenAI-style ``{"error": {...}}`` body (a gateway in front of DashScope) is understood too."""
    if isinstance(body, Mapping):
        data: Any = dict(body)
    else:
        try:
            data = json_loads(body) if body.strip() else {}
        except ValueError:
            data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        raw = body if isinstance(body, bytes) else json_dumps(data)
        return classify_openai_error(status, headers, raw)
    # A body that is not a JSON object (a proxy's HTML page) is the message itself.
    # Not cut here: Provider.error masks the deployment's secrets first, then caps the length.
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) and not isinstance(data, dict) else ""
    if not isinstance(data, dict):
        data = {}
    code = str(data.get("code") or "")
    message = str(data.get("message") or data.get("msg") or text or f"HTTP {status}")
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code or None,
        "retry_after": parse_retry_after(headers),
    }
    return _class_for(status, code, message), message, kwargs
