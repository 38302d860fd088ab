"""OpenAI, Azure OpenAI (classic deployment URLs and the newer ``/openai/v1``), and any
OpenAI-compatible server (vLLM, Ollama, LM Studio...). The wire codec is the core's."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from llm_factory_core import ChatRequest
from llm_factory_core.providers import (
    Capabilities,
    OpenAICompatibleProvider,
    ProviderSettings,
)

__all__ = ["OpenAIProvider", "OpenAISettings"]

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
    """An Entra ID bearer token instead of an Azure API key."""
    organization: str | None = None
    project: str | None = None


def _is_azure(settings: OpenAISettings) -> bool:
    if settings.azure is not None:
        return settings.azure
    if settings.api_version:
        return True
    host = urlsplit(settings.api_base or "").hostname or ""
    return host.endswith(AZURE_HOST_SUFFIXES)


class OpenAIProvider(OpenAICompatibleProvider):
    key = "openai"
    Settings = OpenAISettings
    capabilities = Capabilities(streaming=True, tools=True, vision=True, prefill=False)
    default_api_base: ClassVar[str | None] = "https://api.openai.com/v1"
    owned_by = "openai"

    settings: OpenAISettings

    def prepare(self) -> None:
        self.azure = _is_azure(self.settings)
        self._url, self._body_model = self._target()
        self._headers = self._auth()

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
            if settings.api_key is None and settings.azure_ad_token is None:
                raise ValueError("Azure OpenAI needs api_key (or azure_ad_token)")
        elif settings.api_base is None and settings.api_key is None:
            raise ValueError("OpenAI needs api_key (or set api_base to a local OpenAI-compatible server)")

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
        body = super().build_body(request, stream=stream)
        body["model"] = self._body_model
        return body
