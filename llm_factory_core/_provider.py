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
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from ._bounded import LimitExceeded, UndecodableBody, body_of, bound_response, read_capped
from ._embeddings import EmbeddingRequest, EmbeddingResponse
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
from ._model_rules import ParamRule, UnsupportedParamsPolicy
from ._request import ChatRequest
from ._secrets import SecretSet, display_url, mask_secret, safe_repr_value, settings_secrets
from ._types import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from ._aiohttp import AiohttpTransport

__all__ = [
    "Capabilities",
    "Limits",
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


_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one upstream can make the gateway hold (factory-wide; set them as router
    settings: ``LLMFactory(..., max_response_bytes=...)`` or ``router:`` in YAML). Past a byte
    cap the attempt fails with a retryable ``ServerError`` naming the setting (failover).

    Connections: ``max_connections`` in all, ``max_connections_per_host`` to one origin (aiohttp
    transport only: httpx's pool has no per-host cap, the ``pool_timeout`` is what bounds a wait
    there), ``pool_timeout`` seconds waiting for a free connection."""

    max_response_bytes: int = 64 * _MiB
    """A non-streamed reply, decoded; also all of a compressed stream once inflated."""
    max_error_body_bytes: int = 1 * _MiB
    """Read of an error reply; the rest is not read."""
    max_event_bytes: int = 16 * _MiB
    """One line, or one server-sent event, of a stream."""
    max_uncommitted_bytes: int = 16 * _MiB
    """Chunks a stream may send before its first content (held until the stream commits)."""
    max_connections: int = 1000
    max_connections_per_host: int = 1000
    """As many as the pool: a gateway's streams mostly go to one origin, and 512 concurrent
    streams to it must not queue for connections (a hanging origin is failed over by its
    timeouts). Lower it to keep one origin from holding the pool others share."""
    pool_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    tools: bool = True
    vision: bool = False
    prefill: bool = False
    """Can continue an assistant message given as the last message (used by stream continuation)."""
    embeddings: bool = False
    """Implements ``Provider.embed`` (``factory.embed`` / ``POST /v1/embeddings``)."""


class ProviderSettings(BaseModel):
    """Settings common to every provider; plugins subclass it with their own fields.

    ``extra="forbid"``: a misspelt option is an error naming it, not a silent default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # keys, tokens

    model: str
    """The upstream model id (defaults to the configured ``model_name``)."""
    api_key: SecretStr | None = None
    api_base: str | None = None
    headers: dict[str, str] = {}
    """Extra headers sent upstream, from configuration only (clients cannot set them)."""
    unsupported_params: UnsupportedParamsPolicy = "adapt"
    """What to do with a request parameter this deployment's model rejects (the provider's
    ``model_rules``): ``adapt`` rewrites or drops it (logged once), ``fail`` answers 400."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, safe_repr_value(name, value)

    @field_validator("api_base")
    @classmethod
    def _api_base_is_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            shown = (display_url(value) or "")[:60]  # never echo credentials a URL may hold
            raise ValueError(f"api_base must be an http:// or https:// URL, got {shown!r}")
        if "@" in value.split("//", 1)[1].split("/", 1)[0]:
            # Each HTTP transport treats URL credentials differently (httpx replaces the key's
            # Authorization header with them, aiohttp refuses the request) and URLs get logged.
            raise ValueError(
                "api_base must not contain credentials (user:password@): send them as a header "
                "instead, for example headers: {authorization: 'Basic <base64 of user:password>'}"
            )
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
    """The default error class for an HTTP status (the README's failover table)."""
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
    otel_provider_name: ClassVar[str | None] = None
    """OpenTelemetry's GenAI name for the service (``gen_ai.provider.name`` on trace spans: one
    of the conventions' well-known values such as ``openai``, ``aws.bedrock``, ``gcp.gemini``);
    defaults to ``key``. Override ``otel_provider_name_for`` when it depends on the settings."""

    @classmethod
    def otel_provider_name_for(cls, settings: ProviderSettings) -> str | None:
        """``gen_ai.provider.name`` for a deployment with ``settings`` (one plugin may reach
        several services, as Claude on ``aws.bedrock`` or ``anthropic``)."""
        return cls.otel_provider_name

    model_rules: ClassVar[tuple[ParamRule, ...]] = ()
    """What models of this provider reject and how to adapt a request to them (``_model_rules``);
    the router applies the ones matching a deployment's upstream model on the way out."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        client: httpx.AsyncClient,
        name: str,
        timeouts: Timeouts = Timeouts(),
        limits: Limits = Limits(),
    ) -> None:
        self.settings = settings
        self.client = client
        self.name = name
        """Deployment label for errors and logs (the key appears masked only)."""
        self.timeouts = timeouts
        self.limits = limits
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
        """The base URL this deployment really calls, for status pages (userinfo masked, query
        dropped: both may hold credentials)."""
        return display_url(settings.api_base or cls.default_api_base)

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        """Cross-field checks beyond the pydantic model; raise ValueError with a clear message."""

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        raise NotImplementedError

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        raise NotImplementedError

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embeddings for ``request.input`` with ``self.settings.model`` (floats; the caller's
        ``encoding_format`` is applied at the edge). Set ``Capabilities(embeddings=True)``."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release anything the provider owns beyond the shared client (rarely needed)."""

    # -- errors ---------------------------------------------------------------------------------

    # -- secrets --------------------------------------------------------------------------------

    @property
    def _secret_set(self) -> SecretSet:
        # Built on first use (not in __init__), so a subclass that overrides __init__ keeps it.
        found: SecretSet | None = self.__dict__.get("_secrets_cache")
        if found is None:
            found = self.__dict__["_secrets_cache"] = SecretSet(settings_secrets(self.settings))
        return found

    def secrets(self) -> tuple[str, ...]:
        """Every secret this deployment holds or derives (longest first): the ``SecretStr``
        fields of its settings, its configured header values, ``api_base`` userinfo, and what
        ``add_secret`` registered. Never log or show this; it is what ``mask`` hides."""
        return tuple(self._secret_set)

    def add_secret(self, secret: str | SecretStr | None) -> None:
        """Register a secret found at runtime (an environment fallback, a refreshed token,
        resolved cloud credentials) so every later error masks it too."""
        self._secret_set.add(secret)

    def mask(self, text: str) -> str:
        """``text`` with every secret of this deployment masked (``****wxyz``)."""
        return self._secret_set.mask(text)

    def error(self, cls: type[ProviderError], message: str, **kwargs: Any) -> ProviderError:
        """Build a typed error that names this provider and deployment. Every secret of the
        deployment is masked in its message, code and param, before anything truncates them
        (``ProviderError`` caps their length and escapes control characters)."""
        message = self.mask(message)
        for field in ("code", "param"):
            value = kwargs.get(field)
            if value is not None:
                kwargs[field] = self.mask(value if isinstance(value, str) else str(value))
        return cls(message, provider=self.key, deployment=self.name, **kwargs)

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        """Turn an upstream error response into a typed error. Override for the provider's body."""
        text = body.decode("utf-8", "replace") or f"HTTP {status}"  # error() masks, then caps
        return self.error(error_for_status(status), text, status=status, retry_after=parse_retry_after(headers))

    # -- transport ------------------------------------------------------------------------------

    def _encode(self, body: Any) -> bytes:
        try:
            return _dumps(body)
        except TypeError as exc:  # orjson: an integer beyond 64 bits, a non-JSON value in extra_body
            raise self.error(BadRequestError, f"the request cannot be encoded as JSON: {exc}") from None

    def _transport_error(self, exc: httpx.TransportError, *, received: bool) -> ProviderError:
        if isinstance(exc, (LimitExceeded, UndecodableBody)):  # our own words: no upstream text
            return self.error(ServerError, str(exc))
        kind = type(exc).__name__
        if isinstance(exc, httpx.PoolTimeout):
            return self._pool_timeout()
        if isinstance(exc, httpx.TimeoutException):
            err = self.error(UpstreamTimeoutError, f"upstream timed out ({kind})")
            assert isinstance(err, UpstreamTimeoutError)
            err.silent = not received
            return err
        return self.error(UpstreamConnectionError, f"upstream connection failed ({kind})")

    def _pool_timeout(self) -> ProviderError:
        err = self.error(
            UpstreamTimeoutError,
            f"no free connection to the upstream within pool_timeout={self.limits.pool_timeout}s "
            f"(PoolTimeout: max_connections={self.limits.max_connections} are all busy; "
            "raise max_connections or pool_timeout in the router settings if the load is legitimate)",
        )
        assert isinstance(err, UpstreamTimeoutError)
        err.silent = True
        return err

    def _http_timeout(self, *, stream: bool) -> httpx.Timeout:
        t = self.timeouts
        return httpx.Timeout(t.chunk if stream else t.total, connect=t.connect, pool=self.limits.pool_timeout)

    async def post_json(
        self, url: str, body: Any, headers: Mapping[str, str] | None = None, *, auth: Any = None
    ) -> Any:
        """POST a JSON body; return the decoded JSON reply or raise a typed error. The reply is
        read up to ``limits.max_response_bytes``, an error reply's first ``max_error_body_bytes``."""
        return self.decode_json(*await self.post_for_bytes(url, body, headers, auth=auth))

    def decode_json(self, status: int, content: bytes) -> Any:
        """A successful reply's JSON, or the typed error of a reply that is not JSON."""
        try:
            return _loads(content)
        except ValueError:
            raise self.error(ServerError, "upstream sent a reply that is not JSON", status=status) from None

    async def post_for_bytes(
        self, url: str, body: Any, headers: Mapping[str, str] | None = None, *, auth: Any = None
    ) -> tuple[int, bytes]:
        """``post_json`` without the decoding: a successful reply's status and bytes."""
        fast = FAST_CLIENTS.get(self.client) if auth is None else None
        limits = self.limits
        try:
            if fast is not None:
                status, reply, content = await fast.post(
                    url,
                    self._encode(body),
                    _json_headers(self.settings.headers, headers),
                    self._http_timeout(stream=False),
                    max_body=limits.max_response_bytes,
                    max_error_body=limits.max_error_body_bytes,
                )
                if status >= 400:
                    raise self.parse_error(status, httpx.Headers(reply), content)
            else:
                request = self.client.build_request(
                    "POST",
                    url,
                    content=self._encode(body),
                    headers=_json_headers(self.settings.headers, headers),
                    timeout=self._http_timeout(stream=False),
                )
                response = await self.client.send(request, stream=True, **({"auth": auth} if auth is not None else {}))
                try:
                    status = response.status_code
                    failed = status >= 400
                    content = await read_capped(
                        *body_of(response),
                        limits.max_error_body_bytes if failed else limits.max_response_bytes,
                        "max_error_body_bytes" if failed else "max_response_bytes",
                        truncate=failed,
                    )
                finally:
                    await response.aclose()
                if failed:
                    raise self.parse_error(status, response.headers, content)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, received=False) from None
        return status, content

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
        """Open a streaming response; raise a typed error for an error status. An async context
        manager (``async with self.open_stream(url, body) as response:``, then iterate
        ``response.aiter_raw()`` or ``aiter_sse(response)``): the connection is released when the
        block exits, however it exits."""
        fast = FAST_CLIENTS.get(self.client) if auth is None else None
        try:
            if fast is not None:
                response = await fast.open(
                    method,
                    url,
                    self._encode(body),
                    _json_headers(self.settings.headers, headers),
                    self._http_timeout(stream=True),
                )
            else:
                request = self.client.build_request(
                    method,
                    url,
                    content=self._encode(body),
                    headers=_json_headers(self.settings.headers, headers),
                    timeout=self._http_timeout(stream=True),
                )
                response = await self.client.send(request, stream=True, **({"auth": auth} if auth is not None else {}))
        except httpx.TransportError as exc:
            raise self._transport_error(exc, received=False) from None
        limits = self.limits
        bound_response(response, max_line=limits.max_event_bytes, max_total=limits.max_response_bytes)
        try:
            if response.status_code >= 400:
                raise self.parse_error(response.status_code, response.headers, await self._error_body(response))
            try:
                yield response
            except httpx.TransportError as exc:
                raise self._transport_error(exc, received=True) from None
        finally:
            await response.aclose()

    async def _error_body(self, response: httpx.Response) -> bytes:
        """The first ``max_error_body_bytes`` of an error reply (already decoded by
        ``bound_response``), best effort: the status is the error."""
        try:
            chunks, _ = body_of(response)  # decoded by ``bound_response`` already
            return await read_capped(
                chunks, None, self.limits.max_error_body_bytes, "max_error_body_bytes", truncate=True
            )
        except httpx.TransportError:
            return b""


def _json_headers(configured: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    # identity: no compressed replies (nothing to inflate, no bomb); ``_bounded`` still inflates,
    # within the limits, an upstream that compresses anyway.
    headers = {"content-type": "application/json", "accept-encoding": "identity", **configured}
    if extra:
        headers.update(extra)
    return headers
