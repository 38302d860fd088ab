"""Bedrock and Anthropic error replies -> llm-factory's typed errors (pure functions).

Bedrock names the error in ``x-amzn-ErrorType`` (``ThrottlingException:http://...``) or in the
body's ``__type``/``code``; inside an event stream the frame's ``:exception-type`` carries the same
name in lowerCamelCase. Anthropic sends ``{"type":"error","error":{"type","message"}}``.
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
from llm_factory_core.providers import error_for_status, json_loads, parse_retry_after

__all__ = [
    "Classified",
    "classify_anthropic_error",
    "classify_anthropic_payload",
    "classify_bedrock_code",
    "classify_bedrock_error",
    "classify_bedrock_exception",
    "normalise_aws_code",
]

Classified = tuple[type[ProviderError], str, dict[str, Any]]

# Context-length wording of both hosts ("Input is too long for requested model.", "prompt is too
# long: 210000 tokens > 200000 maximum", "input length and `max_tokens` exceed context limit"). No
# nested or unbounded-then-alternation quantifiers: the old ``exceeds? .*(?:maximum|...)`` took 21 s
# on a 100 KB hostile message (each "exceed " rescanned the rest of it).
_CONTEXT_RE = re.compile(
    r"too long|context (?:length|window|limit)|too many (?:input )?tokens in (?:the )?(?:prompt|input)",
    re.IGNORECASE,
)
_EXCEED_RE = re.compile(r"exceeds? ", re.IGNORECASE)
_EXCEED_WORDS = ("maximum", "context", "limit")
_AWS_AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "TokenRefreshRequired",
        "InvalidAccessKeyId",
    }
)
_AWS_TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
        "ModelStreamErrorException",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
_AWS_RATE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
_AWS_BAD_REQUEST_CODES = frozenset(
    {"ValidationException", "ConflictException", "ResourceNotFoundException", "SerializationException"}
)


def normalise_aws_code(raw: str | None) -> str:
    """``ThrottlingException:http://internal...`` / ``aws#ThrottlingException`` / the event
    stream's ``throttlingException`` -> ``ThrottlingException`` (botocore's rule plus a capital)."""
    code = (raw or "").split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return code[:1].upper() + code[1:]


def _is_context(message: str) -> bool:
    if _CONTEXT_RE.search(message):
        return True
    # "exceed(s) ... maximum/context/limit": one pass for the word, one for what follows it.
    found = _EXCEED_RE.search(message)
    rest = message[found.end() :].lower() if found else ""
    return any(word in rest for word in _EXCEED_WORDS)


def classify_bedrock_code(code: str, message: str, status: int | None) -> type[ProviderError]:
    if code in _AWS_RATE_CODES:
        return RateLimitError
    if code in _AWS_TRANSIENT_CODES:
        return ServerError
    if code in _AWS_AUTH_CODES:
        return AuthenticationError
    if code == "ServiceQuotaExceededException":
        return InsufficientQuotaError
    if code in _AWS_BAD_REQUEST_CODES:
        return ContextLengthError if code == "ValidationException" and _is_context(message) else BadRequestError
    if status is None:
        return ServerError
    cls = error_for_status(status)
    if cls is BadRequestError and _is_context(message):
        return ContextLengthError
    return cls


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json_loads(body) if body.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def classify_bedrock_error(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    data = _json_object(body)
    code = normalise_aws_code(headers.get("x-amzn-errortype") or data.get("__type") or data.get("code"))
    message = str(data.get("message") or data.get("Message") or body.decode("utf-8", "replace")[:300])
    message = message or f"HTTP {status}"
    cls = classify_bedrock_code(code, message, status)
    kwargs: dict[str, Any] = {"status": status, "code": code or None, "retry_after": parse_retry_after(headers)}
    return cls, message, kwargs


def classify_bedrock_exception(exception_type: str, payload: bytes) -> Classified:
    """An exception frame inside a 200 event stream."""
    data = _json_object(payload)
    code = normalise_aws_code(exception_type)
    message = str(data.get("message") or data.get("Message") or code)
    if data.get("originalMessage"):
        message += f" ({data['originalMessage']})"
    return classify_bedrock_code(code, message, None), message, {"code": code}


_ANTHROPIC_TYPES: dict[str, type[ProviderError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "billing_error": InsufficientQuotaError,
    "not_found_error": BadRequestError,
    "request_too_large": BadRequestError,
    "rate_limit_error": RateLimitError,
    "api_error": ServerError,
    "overloaded_error": ServerError,
    "timeout_error": ServerError,
}


def classify_anthropic_payload(data: dict[str, Any], status: int | None) -> Classified:
    inner = data.get("error")
    error: dict[str, Any] = inner if isinstance(inner, dict) else data
    err_type = str(error.get("type") or "")
    message = str(error.get("message") or err_type or (f"HTTP {status}" if status else "error"))
    cls = _ANTHROPIC_TYPES.get(err_type) or (error_for_status(status) if status else ServerError)
    if cls is BadRequestError and _is_context(message):
        cls = ContextLengthError
    if cls is BadRequestError and "content filter" in message.lower():
        cls = ContentFilterError
    # An account out of credit is a 400 invalid_request_error ("Your credit balance is too low to
    # access the Anthropic API"), not the documented 402 billing_error: the key is spent, not the
    # request wrong (anthropics/claude-code#4684, anthropics/claude-quickstarts#229).
    if cls is BadRequestError and "credit balance" in message.lower():
        cls = InsufficientQuotaError
    return cls, message, {"status": status, "code": err_type or None}


def classify_anthropic_error(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    data = _json_object(body)
    if not data:
        data = {"error": {"message": body.decode("utf-8", "replace")[:300] or f"HTTP {status}"}}
    cls, message, kwargs = classify_anthropic_payload(data, status)
    kwargs["retry_after"] = parse_retry_after(headers)
    return cls, message, kwargs
