"""The provider contract every plugin implements, and the HTTP helpers most of them share.

A provider instance serves one deployment: its validated settings (key, base URL, upstream model)
and the shared ``httpx.AsyncClient``. Translation (request -> body, body -> ChatCompletion,
event -> chunk, error body -> typed error) stays in pure functions of the plugin; this module only
does transport, so a plugin is mostly its codec.
"""

from __future__ import annotations

import email.utils
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from ._errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientQuotaError,
    ProviderError,
    RateLimitError,
    ServerError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from ._json import dumps as _dumps
from ._json import loads as _loads
from ._request import ChatRequest
from ._types import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from ._aiohttp import AiohttpTransport

__all__ = [
    "Capabilities",
    "Provider",
    "ProviderSettings",
    "Timeouts",
    "error_for_status",
    "mask_secret",
    "parse_retry_after",
]


FAST_CLIENTS: weakref.WeakKeyDictionary[httpx.AsyncClient, AiohttpTransport] = weakref.WeakKeyDictionary()
"""Clients the factory built around its aiohttp transport (nothing else configured on them):
``post_json`` and ``open_stream`` send through the transport directly, skipping httpx's client
layer (see ``_aiohttp``). A client passed in by the user is never here."""


def mask_secret(secret: SecretStr | str | None) -> str:
    """``sk-abc...wxyz`` -> ``****wxyz``: enough to tell keys apart, never enough to use one."""
    if secret is None:
        return "<none>"
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return "****" + value[-4:] if len(value) > 8 else "****"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-deployment limits in seconds. ``chunk`` is the longest silence between any two bytes
    of a stream (keep-alive comments count as life); ``first_token`` bounds the wait for the first
    content; ``total`` bounds one attempt (the router's deadline bounds all attempts together)."""

    connect: float = 10.0
    first_token: float = 120.0
    chunk: float = 60.0
    total: float = 600.0

    def for_call(self) -> httpx.Timeout:
        return httpx.Timeout(self.total, connect=self.connect)

    def for_stream(self) -> httpx.Timeout:
        return httpx.Timeout(self.chunk, connect=self.connect)


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    tools: bool = True
    vision: bool = False
    prefill: bool = False
    """Can continue an assistant message given as the last message (used by stream continuation)."""


class ProviderSettings(BaseModel):
    """Settings common to every provider; plugins subclass it with their own fields.

    ``extra="forbid"``: a misspelt option is an error naming it, not a silent default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    """The upstream model id (defaults to the configured ``model_name``)."""
    api_key: SecretStr | None = None
    api_base: str | None = None
    headers: dict[str, str] = {}
    """Extra headers sent upstream, from configuration only (clients cannot set them)."""

    @field_validator("api_base")
    @classmethod
    def _api_base_is_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError(f"api_base must be an http:// or https:// URL, got {value[:60]!r}")
        return value.rstrip("/")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (Azure), ``retry-after`` seconds or HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    401: AuthenticationError,
    402: InsufficientQuotaError,
    403: AuthenticationError,
    408: ServerError,
    409: ServerError,
    429: RateLimitError,
}


def error_for_status(status: int) -> type[ProviderError]:
    """The default error class for an HTTP status (DESIGN.md's failover table)."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    return ServerError if status >= 500 else BadRequestError


class Provider:
    """Base class of every provider. Subclasses set ``key`` and ``Settings`` and implement
    ``chat`` and ``stream``; HTTP providers also override ``parse_error``."""

    key: ClassVar[str]
    """The provider key users configure (``provider: qwen``); equals the plugin's entry point name."""
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    capabilities: ClassVar[Capabilities] = Capabilities()
    default_api_base: ClassVar[str | None] = None
    owned_by: ClassVar[str | None] = None
    """Shown as ``owned_by`` in ``/v1/models``; defaults to ``key``."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        client: httpx.AsyncClient,
        name: str,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.settings = settings
        self.client = client
        self.name = name
        """Deployment label for errors and logs (the key appears masked only)."""
        self.timeouts = timeouts
        self.prepare()

    def prepare(self) -> None:
        """Called once at the end of construction: precompute URLs and headers here (the hot
        path should not rebuild them per request) instead of overriding ``__init__``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @classmethod
    def credential_label(cls, settings: ProviderSettings) -> str | None:
        """A masked hint of the credential, to tell deployments apart in status and logs."""
        return mask_secret(settings.api_key) if settings.api_key is not None else None

    @classmethod
    def display_api_base(cls, settings: ProviderSettings) -> str | None:
        """The base URL this deployment really calls, for status pages."""
        return settings.api_base or cls.default_api_base

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        """Cross-field checks beyond the pydantic model; raise ValueError with a clear message."""

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        raise NotImplementedError

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release anything the provider owns beyond the shared client (rarely needed)."""

    # -- errors ---------------------------------------------------------------------------------

    def error(self, cls: type[ProviderError], message: str, **kwargs: Any) -> ProviderError:
        """Build a typed error that names this provider and deployment. An upstream message
        that echoes the key gets it masked."""
        key = self.settings.api_key
        if key is not None:
            secret = key.get_secret_value()
            if secret and secret in message:
                message = message.replace(secret, mask_secret(secret))
        return cls(message, provider=self.key, deployment=self.name, **kwargs)

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        """Turn an upstream error response into a typed error. Override for the provider's body."""
        text = body.decode("utf-8", "replace")[:500] or f"HTTP {status}"
        return self.error(error_for_status(status), text, status=status, retry_after=parse_retry_after(headers))

    # -- transport ------------------------------------------------------------------------------

    def _encode(self, body: Any) -> bytes:
        try:
            return _dumps(body)
        except TypeError as exc:  # orjson: an integer beyond 64 bits, a non-JSON value in extra_body
            raise self.error(BadRequestError, f"the request cannot be encoded as JSON: {exc}") from None

    def _transport_error(self, exc: httpx.TransportError, *, received: bool) -> ProviderError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            err = self.error(UpstreamTimeoutError, f"upstream timed out ({kind})")
            assert isinstance(err, UpstreamTimeoutError)
            err.silent = not received
            return err
        return self.error(UpstreamConnectionError, f"upstream connection failed ({kind})")

    async def post_json(
        self, url: str, body: Any, headers: Mapping[str, str] | None = None, *, auth: Any = None
    ) -> Any:
        """POST a JSON body; return the decoded JSON reply or raise a typed error."""
        fast = FAST_CLIENTS.get(self.client) if auth is None else None
        if fast is not None:
            try:
                status, reply, content = await fast.post(
                    url, self._encode(body), _json_headers(self.settings.headers, headers), self.timeouts.for_call()
                )
            except httpx.TransportError as exc:
                raise self._transport_error(exc, received=False) from None
            if status >= 400:
                raise self.parse_error(status, httpx.Headers(reply.raw_headers), content)
            try:
                return _loads(content)
            except ValueError:
                raise self.error(ServerError, "upstream sent a reply that is not JSON", status=status) from None
        try:
            response = await self.client.post(
                url,
                content=self._encode(body),
                headers=_json_headers(self.settings.headers, headers),
                timeout=self.timeouts.for_call(),
                **({"auth": auth} if auth is not None else {}),
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc, received=False) from None
        if response.status_code >= 400:
            raise self.parse_error(response.status_code, response.headers, response.content)
        try:
            return _loads(response.content)
        except ValueError:
            raise self.error(
                ServerError, "upstream sent a reply that is not JSON", status=response.status_code
            ) from None

    @asynccontextmanager
    async def open_stream(
        self,
        url: str,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        auth: Any = None,
        method: str = "POST",
    ) -> AsyncIterator[httpx.Response]:
        """Open a streaming response; raise a typed error for an error status. The connection is
        released when the block exits, however it exits."""
        fast = FAST_CLIENTS.get(self.client) if auth is None else None
        try:
            if fast is not None:
                response = await fast.open(
                    method,
                    url,
                    self._encode(body),
                    _json_headers(self.settings.headers, headers),
                    self.timeouts.for_stream(),
                )
            else:
                request = self.client.build_request(
                    method,
                    url,
                    content=self._encode(body),
                    headers=_json_headers(self.settings.headers, headers),
                    timeout=self.timeouts.for_stream(),
                )
                response = await self.client.send(request, stream=True, **({"auth": auth} if auth is not None else {}))
        except httpx.TransportError as exc:
            raise self._transport_error(exc, received=False) from None
        try:
            if response.status_code >= 400:
                try:
                    content = await response.aread()
                except httpx.TransportError:
                    content = b""
                raise self.parse_error(response.status_code, response.headers, content)
            try:
                yield response
            except httpx.TransportError as exc:
                raise self._transport_error(exc, received=True) from None
        finally:
            await response.aclose()


def _json_headers(configured: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"content-type": "application/json", **configured}
    if extra:
        headers.update(extra)
    return headers
