"""The exception tree. Secrets never appear in any message: deployments are named, keys masked.

::

    LLMFactoryError
    ├── ConfigurationError                 bad configuration (names the file and field)
    │   └── PluginError                    a provider plugin is missing or claimed twice
    ├── InvalidRequestError                the caller's request cannot be routed (HTTP 400)
    │   ├── ModelNotFoundError             no deployment serves that model name (404)
    │   └── UnknownStrategyError           no such load-balancing strategy (400)
    ├── ProviderError                      one attempt against one deployment failed
    │   ├── RateLimitError                 429: cooldown for retry_after, next deployment
    │   ├── AuthenticationError            401/403: this key is bad, deployment disabled
    │   │   └── InsufficientQuotaError     402 / arrears / quota spent: key disabled
    │   ├── BadRequestError                400/404/413/422: the request is the problem, no failover
    │   │   ├── ContextLengthError         prompt too long: skip to bigger fallbacks
    │   │   └── ContentFilterError         rejected by a content filter: no failover at all
    │   ├── ServerError                    5xx / 408 / 409 from the upstream: cooldown, next
    │   ├── UpstreamConnectionError        connection refused or reset
    │   ├── UpstreamTimeoutError           connect / first-token / between-chunks / total limit
    │   └── StreamInterruptedError         a committed stream broke: never a silent end
    └── AllDeploymentsFailedError          every attempt failed; carries each attempt
        └── NoDeploymentAvailableError     every deployment is cooling down or disabled
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AllDeploymentsFailedError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "InsufficientQuotaError",
    "InvalidRequestError",
    "LLMFactoryError",
    "MAX_ERROR_FIELD",
    "MAX_ERROR_MESSAGE",
    "ModelNotFoundError",
    "NoDeploymentAvailableError",
    "PluginError",
    "ProviderError",
    "RateLimitError",
    "ServerError",
    "StreamInterruptedError",
    "UnknownStrategyError",
    "UpstreamConnectionError",
    "UpstreamTimeoutError",
    "clean_upstream_text",
]

MAX_ERROR_MESSAGE = 2000
"""A provider error's message is cut to this many characters (after its secrets are masked):
an upstream that answers 50 MB of error text must not reach clients or logs whole."""
MAX_ERROR_FIELD = 200
"""The same for ``code`` and ``param``."""

# Line breaks and other control characters in upstream text would forge log lines (or drive a
# terminal); they are shown escaped instead. Tabs stay.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def clean_upstream_text(text: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    """``text`` on one line (control characters escaped) and at most ``limit`` characters long
    plus a note of how much was cut. Mask secrets before calling this, never after."""
    text = text.translate(_ESCAPES)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


class LLMFactoryError(Exception):
    """Root of every error raised by llm-factory."""

    http_status: ClassVar[int] = 500
    """The status the server answers with."""
    error_type: ClassVar[str] = "api_error"
    """OpenAI's ``error.type`` for this class."""
    code: str | None = None
    """OpenAI's ``error.code``."""
    param: str | None = None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class ConfigurationError(LLMFactoryError):
    """Configuration is invalid; the message names the source, the field path and the fix."""

    error_type = "configuration_error"


class PluginError(ConfigurationError):
    """A provider plugin is not installed, broken, or two plugins claim the same key."""


class InvalidRequestError(LLMFactoryError):
    http_status = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code


class ModelNotFoundError(InvalidRequestError):
    http_status = 404

    def __init__(self, model: str, available: list[str]):
        listed = ", ".join(available) if available else "none: no provider is configured"
        shown = model if len(model) <= 100 else model[:100] + "..."  # never echo a huge input back
        super().__init__(
            f"The model {shown!r} does not exist. Configured models: {listed}.",
            param="model",
            code="model_not_found",
        )
        self.model = model
        self.available = available


class UnknownStrategyError(InvalidRequestError):
    def __init__(self, name: str, valid: list[str]):
        super().__init__(
            f"Unknown load_balance_strategy {name!r}; valid strategies: {', '.join(valid)}.",
            param="load_balance_strategy",
            code="invalid_value",
        )


class ProviderError(LLMFactoryError):
    """An attempt against one deployment failed.

    ``retryable`` decides whether the router tries another deployment; ``disables_deployment``
    takes the deployment out of service for long (bad key, no money).
    """

    retryable: ClassVar[bool] = True
    disables_deployment: ClassVar[bool] = False
    http_status = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        deployment: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(clean_upstream_text(str(message)))
        self.provider = provider
        self.deployment = deployment
        self.status = status
        self.retry_after = retry_after
        self.code = clean_upstream_text(str(code), MAX_ERROR_FIELD) if code is not None else None
        self.param = clean_upstream_text(str(param), MAX_ERROR_FIELD) if param is not None else None

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                self.provider and f"provider={self.provider}",
                self.deployment and f"deployment={self.deployment}",
                self.status is not None and f"status={self.status}",
                self.code and f"code={self.code}",
            )
            if part
        )
        return f"{self.message} ({where})" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class RateLimitError(ProviderError):
    http_status = 429
    error_type = "rate_limit_error"


class AuthenticationError(ProviderError):
    disables_deployment = True
    error_type = "authentication_error"


class InsufficientQuotaError(AuthenticationError):
    error_type = "insufficient_quota"


class BadRequestError(ProviderError):
    retryable = False
    http_status = 400
    error_type = "invalid_request_error"


class ContextLengthError(BadRequestError):
    """The prompt does not fit this model; fallbacks (bigger models) are still tried."""


class ContentFilterError(BadRequestError):
    """A content filter rejected the request: the same request is rejected anywhere."""

    def __init__(self, message: str, **kwargs: Any):
        kwargs.setdefault("code", "content_filter")
        super().__init__(message, **kwargs)


class ServerError(ProviderError):
    http_status = 502


class UpstreamConnectionError(ProviderError):
    http_status = 502
    error_type = "upstream_connection_error"


class UpstreamTimeoutError(ProviderError):
    http_status = 504
    error_type = "timeout"

    silent: bool = False
    """True when not a single byte arrived: the deployment is not tried again for this request."""


class StreamInterruptedError(ProviderError):
    """A stream failed after content reached the caller; it cannot be failed over silently."""

    error_type = "stream_interrupted"


@dataclass(frozen=True)
class Attempt:
    """One try against one deployment, as reported in ``AllDeploymentsFailedError``."""

    deployment: str
    model: str
    error: ProviderError
    at: float

    def describe(self) -> str:
        return f"{self.deployment} ({self.model}): {type(self.error).__name__}: {self.error}"


class AllDeploymentsFailedError(LLMFactoryError):
    """Every attempt failed; ``attempts`` lists them in order."""

    error_type = "upstream_error"

    def __init__(self, model: str, attempts: list[Attempt], reason: str | None = None):
        self.model = model
        self.attempts = attempts
        lines = [reason or f"All deployments for model {model!r} failed."]
        lines += [f"  attempt {i}: {a.describe()}" for i, a in enumerate(attempts, 1)]
        super().__init__("\n".join(lines))

    @property
    def last_error(self) -> ProviderError | None:
        return self.attempts[-1].error if self.attempts else None

    @property
    def http_status(self) -> int:  # type: ignore[override]
        errors = [a.error for a in self.attempts]
        if errors and all(isinstance(e, RateLimitError) for e in errors):
            return 429
        if errors and isinstance(errors[-1], UpstreamTimeoutError):
            return 504
        if errors and isinstance(errors[-1], BadRequestError):
            return errors[-1].http_status
        return 502

    @property
    def retry_after(self) -> float | None:
        hints = [a.error.retry_after for a in self.attempts if a.error.retry_after]
        return min(hints) if hints else None


def _until(at: float | None) -> str:
    if at is None:
        return ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    return f" (until {stamp}, in {max(0.0, at - time.time()):.0f}s)"


class NoDeploymentAvailableError(AllDeploymentsFailedError):
    """Every deployment of the model is cooling down or disabled; ``available_at`` says when
    the first one returns (wall-clock seconds), when any will."""

    def __init__(
        self,
        model: str,
        attempts: list[Attempt],
        available_at: float | None,
        unavailable: list[tuple[str, str, float | None]] | None = None,
    ):
        self.available_at = available_at
        self.unavailable = unavailable or []
        """``(deployment, why, until)`` per deployment out of service: ``why`` is its disable
        reason or last error (already masked), ``until`` the wall-clock end, when known."""
        if available_at is None:
            reason = f"No deployment of model {model!r} is available: all are disabled."
        else:
            wait = max(0.0, available_at - time.time())
            reason = (
                f"Every deployment of model {model!r} is cooling down; the first is available again in {wait:.1f}s."
            )
        lines = [reason]
        lines += [f"  {name}: {why}{_until(until)}" for name, why, until in self.unavailable]
        super().__init__(model, attempts, "\n".join(lines))

    @property
    def http_status(self) -> int:  # type: ignore[override]
        return 429 if self.available_at is not None else 503

    @property
    def retry_after(self) -> float | None:
        at = self.available_at
        if at is None:  # all disabled: the first to be re-enabled, when that is known
            untils = [until for _, _, until in self.unavailable if until is not None]
            at = min(untils) if untils else None
        return None if at is None else max(0.0, at - time.time())
