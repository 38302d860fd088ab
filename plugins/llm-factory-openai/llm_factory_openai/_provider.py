"""OpenAI, Azure OpenAI (classic deployment URLs and the newer ``/openai/v1``), and any
OpenAI-compatible server (vLLM, Ollama, LM Studio...). The wire codec is the core's.

Which token-limit field goes upstream depends on the endpoint, not the model (the model rules in
``_rules`` handle what a model family rejects): api.openai.com and Azure (v1, or an
``api_version`` from 2024-09-01 on) get ``max_completion_tokens``, which OpenAI accepts for every
current chat model and ``max_tokens`` is deprecated for; an Azure ``api_version`` before
2024-09-01-preview knows neither ``max_completion_tokens`` nor ``stream_options`` (400
``Unrecognized request argument supplied``), so those are adapted to what it knows; any other
OpenAI-compatible server (vLLM, Ollama, LM Studio...) gets the request as the caller sent it.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, cast
from urllib.parse import quote, unquote, urlsplit

import httpx
from pydantic import Field, SecretStr

from llm_factory_core import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ContentFilterError,
    EmbeddingRequest,
    EmbeddingResponse,
    ProviderError,
    ServerError,
    UpstreamConnectionError,
)
from llm_factory_core.providers import (
    Capabilities,
    OpenAICompatibleProvider,
    ProviderSettings,
    classify_openai_error,
    encode_openai_request,
)

from ._embeddings import MAX_BATCH, embed_in_batches, embeddings_url
from ._entra import COGNITIVE_SERVICES_SCOPE, TokenSource, from_credential, from_provider
from ._rules import OPENAI_RULES

__all__ = ["OpenAIProvider", "OpenAISettings"]

log = logging.getLogger("llm_factory_openai")

FIRST_MODERN_AZURE_VERSION = "2024-09-01"
"""The first Azure api-version with ``max_completion_tokens``, ``stream_options`` and
``parallel_tool_calls`` (Azure OpenAI API version lifecycle: "Changes between 2024-09-01-preview and
2024-08-01-preview"); 2024-10-21 is the GA version that has them."""

_DEPLOYMENT_URL = re.compile(r"^(?P<endpoint>.+)/openai/deployments/(?P<deployment>[^/?]+)$")
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


class OpenAISettings(ProviderSettings):
    api_version: str | None = None
    """Azure's ``api-version`` (``2024-10-21``); setting it selects Azure's classic URL form."""
    deployment: str | None = None
    """Azure deployment name; defaults to the upstream model id."""
    azure: bool | None = None
    """Force (True) or forbid (False) Azure mode; by default it follows api_version and the host."""
    azure_ad_token: SecretStr | None = None
    """A static Entra ID bearer token instead of an Azure API key (it expires after about an
    hour: prefer ``azure_ad_auth`` or ``azure_ad_token_provider`` for anything long-running)."""
    azure_ad_auth: bool = False
    """Get Entra ID tokens from azure-identity's ``DefaultAzureCredential`` (managed identity,
    workload identity, environment, Azure CLI...), refreshed before they expire. Needs
    ``pip install 'llm-factory-openai[azure]'``."""
    azure_ad_scope: str = COGNITIVE_SERVICES_SCOPE
    """The scope tokens are requested for."""
    azure_credential: Any = None
    """From code: a credential object with azure-identity's ``get_token(scope) -> AccessToken``
    (sync or async), e.g. ``ManagedIdentityCredential(client_id=...)``; refreshed like
    ``azure_ad_auth``."""
    azure_ad_token_provider: Callable[[], Any] | None = None
    """From code: a callable returning a token (openai-python's ``azure_ad_token_provider``, e.g.
    azure-identity's ``get_bearer_token_provider(...)``), sync or async. A JWT is reused until five
    minutes before its ``exp``; an opaque token is asked for on every request."""
    organization: str | None = None
    project: str | None = None
    strip_foreign_fields: bool = True
    """Drop message fields OpenAI's API does not define (other providers' ``thinking_blocks``,
    ``extra_content``, ``reasoning_content``, ``cache_control``...), which OpenAI and Azure reject
    with a 400. Set false for an OpenAI-compatible server that reads them (vLLM reasoning parsers)."""
    embedding_batch_size: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    """Inputs per upstream embeddings request (OpenAI and Azure take at most 2048); a longer list
    is sent in several requests and merged in order."""

    def entra_methods(self) -> list[str]:
        """The Entra ID token sources configured (at most one is allowed)."""
        methods = [
            ("azure_ad_token", self.azure_ad_token is not None),
            ("azure_ad_auth", self.azure_ad_auth),
            ("azure_credential", self.azure_credential is not None),
            ("azure_ad_token_provider", self.azure_ad_token_provider is not None),
        ]
        return [name for name, used in methods if used]


def _is_azure(settings: OpenAISettings) -> bool:
    if settings.azure is not None:
        return settings.azure
    if settings.api_version:
        return True
    host = urlsplit(settings.api_base or "").hostname or ""
    return host.endswith(AZURE_HOST_SUFFIXES)


def _azure_version_is_modern(version: str | None) -> bool:
    """Whether an Azure ``api-version`` (``2024-10-21``, ``2025-04-01-preview``) knows
    ``max_completion_tokens`` and ``stream_options``; an unparsable one is assumed to."""
    date = (version or "")[:10]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        return True
    return date >= FIRST_MODERN_AZURE_VERSION


class OpenAIProvider(OpenAICompatibleProvider):
    key = "openai"
    Settings = OpenAISettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=False, embeddings=True)
    default_api_base: ClassVar[str | None] = "https://api.openai.com/v1"
    owned_by = "openai"
    model_rules = OPENAI_RULES
    raw_sse: ClassVar[bool] = True  # adapt_chunk is the codec's: plain chunks may pass through unchanged
    raw_reply: ClassVar[bool] = True  # so is parse_completion: plain replies may pass through unchanged

    settings: OpenAISettings

    @classmethod
    def otel_provider_name_for(cls, settings: ProviderSettings) -> str:
        return "azure.ai.openai" if _is_azure(cast(OpenAISettings, settings)) else "openai"

    def prepare(self) -> None:
        self.azure = _is_azure(self.settings)
        self._url, self._body_model = self._target()
        self._embeddings_url = embeddings_url(self._url)
        self._headers = self._auth()
        self._tokens = self._token_source()
        self._token_field, self._legacy_azure = self._token_field_for_endpoint()
        self._warned: set[str] = set()

    def _token_field_for_endpoint(self) -> tuple[str | None, bool]:
        """(the token-limit field this endpoint wants, or None to send what the caller sent;
        whether it is an Azure api-version before ``stream_options``)."""
        s = self.settings
        classic = self.azure and not self._url.split("?", 1)[0].endswith("/openai/v1/chat/completions")
        if classic and not _azure_version_is_modern(s.api_version):
            return "max_tokens", True
        host = urlsplit(self._url).hostname or ""
        if self.azure or host == "api.openai.com":
            return "max_completion_tokens", False
        return None, False

    def _token_source(self) -> TokenSource | None:
        s = self.settings
        if s.azure_credential is not None:
            fetch = from_credential(s.azure_credential, s.azure_ad_scope)
        elif s.azure_ad_token_provider is not None:
            fetch = from_provider(s.azure_ad_token_provider)
        elif s.azure_ad_auth:
            identity = importlib.import_module("azure.identity")
            fetch = from_credential(identity.DefaultAzureCredential(), s.azure_ad_scope)
        else:
            return None
        return TokenSource(fetch, on_token=self.add_secret)

    @classmethod
    def validate_settings(cls, settings: ProviderSettings) -> None:
        assert isinstance(settings, OpenAISettings)
        if _is_azure(settings):
            base = settings.api_base
            if not base:
                raise ValueError("Azure OpenAI needs api_base (https://<resource>.openai.azure.com)")
            if not settings.api_version and not base.endswith("/openai/v1"):
                raise ValueError(
                    "Azure OpenAI needs api_version (for example 2024-10-21), or an api_base "
                    "ending in /openai/v1 for the version-less v1 API"
                )
            if settings.api_key is None and not settings.entra_methods():
                raise ValueError(
                    "Azure OpenAI needs api_key, or Entra ID auth: azure_ad_auth: true (azure-identity), "
                    "azure_credential / azure_ad_token_provider from code, or a static azure_ad_token"
                )
        elif settings.api_base is None and settings.api_key is None:
            raise ValueError("OpenAI needs api_key (or set api_base to a local OpenAI-compatible server)")
        methods = settings.entra_methods()
        if len(methods) > 1:
            raise ValueError(f"choose one Entra ID token source, not {' and '.join(methods)}")
        if settings.azure_ad_auth:
            try:
                importlib.import_module("azure.identity")
            except ImportError:
                raise ValueError(
                    "azure_ad_auth needs azure-identity: pip install 'llm-factory-openai[azure]'"
                ) from None
        credential = settings.azure_credential
        if credential is not None and not callable(getattr(credential, "get_token", None)):
            raise ValueError(
                "azure_credential must have get_token(scope) -> AccessToken (azure-identity's protocol), "
                f"got {type(credential).__name__}"
            )

    def _target(self) -> tuple[str, str]:
        s = self.settings
        base = (s.api_base or self.default_api_base or "").rstrip("/")
        if not self.azure or base.endswith("/openai/v1"):
            return base + "/chat/completions", (s.deployment or s.model)
        pasted = None
        if m := _DEPLOYMENT_URL.match(base):
            # A deployment URL copied from the portal: its deployment is the default one.
            base, pasted = m.group("endpoint"), unquote(m.group("deployment"))
        elif base.endswith("/openai"):
            base = base[: -len("/openai")]
        deployment = quote(s.deployment or pasted or s.model, safe="")
        version = quote(s.api_version or "", safe="")
        return f"{base}/openai/deployments/{deployment}/chat/completions?api-version={version}", s.model

    def _auth(self) -> dict[str, str]:
        s = self.settings
        headers: dict[str, str] = {}
        if s.azure_ad_token is not None:
            headers["authorization"] = f"Bearer {s.azure_ad_token.get_secret_value()}"
        elif s.entra_methods():
            pass  # a refreshed token is added per request (request_headers); Entra wins over api_key
        elif s.api_key is not None:
            secret = s.api_key.get_secret_value()
            if self.azure and not self._url.split("?", 1)[0].endswith("/openai/v1/chat/completions"):
                headers["api-key"] = secret
            else:
                headers["authorization"] = f"Bearer {secret}"
        if s.organization:
            headers["openai-organization"] = s.organization
        if s.project:
            headers["openai-project"] = s.project
        return headers

    def chat_url(self) -> str:
        return self._url

    def auth_headers(self) -> dict[str, str]:
        return self._headers

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = encode_openai_request(
            request, self._body_model, stream=stream, strip_foreign_fields=self.settings.strip_foreign_fields
        )
        field = self._token_field
        if field == "max_completion_tokens" and "max_tokens" in body:
            # Deprecated, and refused by reasoning models; the caller's own new field wins.
            value = body.pop("max_tokens")
            body.setdefault("max_completion_tokens", value)
        elif field == "max_tokens" and "max_completion_tokens" in body:
            value = body.pop("max_completion_tokens")
            body.setdefault("max_tokens", value)
            self._note("max_completion_tokens", "sent as max_tokens: this api_version predates max_completion_tokens")
        if self._legacy_azure and body.pop("stream_options", None) is not None:
            self._note("stream_options", "dropped: this api_version predates stream_options (use 2024-10-21 or later)")
        return body

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        cls, message, kwargs = classify_openai_error(status, headers, body)
        if kwargs.get("code") == "invalid_prompt":
            # OpenAI's safety check on reasoning models ("Invalid prompt: your prompt was flagged as
            # potentially violating our usage policy", 400 code invalid_prompt): a content-filter
            # rejection, which no other deployment of the same model would accept either.
            cls = ContentFilterError
        return self.error(cls, message, **kwargs)

    def _note(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("%s: %s %s", self.name, what, message)

    # -- Entra ID tokens refreshed per request --------------------------------------------------

    async def request_headers(self) -> dict[str, str]:
        """The headers of one request: the static ones, plus a fresh Entra token when one is
        configured through a credential or a provider callable."""
        if self._tokens is None:
            return self._headers
        try:
            token = await self._tokens.token()
        except ProviderError:
            raise
        except Exception as exc:  # the credential's own error types (azure-identity, user code)
            raise self.error(
                UpstreamConnectionError, f"could not get an Entra ID token: {type(exc).__name__}: {exc}"
            ) from None
        return {**self._headers, "authorization": f"Bearer {token}"}

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        headers = await self.request_headers()
        return await self.complete(self._url, self.build_body(request, stream=False), headers)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        headers = await self.request_headers()
        async with self.open_stream(self._url, self.build_body(request, stream=True), headers) as response:
            async for chunk in self.decode_stream(response):
                yield chunk

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        headers = await self.request_headers()

        async def post(body: dict[str, Any]) -> Any:
            data = await self.post_json(self._embeddings_url, body, headers)
            if isinstance(data, dict) and data.get("error"):
                raise self.error_from_payload(data)
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise self.error(ServerError, "upstream embeddings reply has no data list")
            return data

        def mismatch(message: str) -> ProviderError:
            return self.error(ServerError, message)

        return await embed_in_batches(request, self._body_model, self.settings.embedding_batch_size, post, mismatch)
