"""Settings of a Gemini deployment and the URLs and headers they imply (pure functions)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from llm_factory_core.providers import ProviderSettings

__all__ = [
    "DEFAULT_API_BASE",
    "GeminiSettings",
    "auth_headers",
    "endpoint",
    "is_vertex",
    "thinking_config",
    "validate",
]

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
_VERSION_TAIL = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")


class GeminiSettings(ProviderSettings):
    api_version: str = "v1beta"
    """Added to ``api_base`` unless the base already ends in a version (``.../v1``)."""
    include_thoughts: bool | None = None
    """Ask for thought summaries (``thinkingConfig.includeThoughts``); they become ``reasoning_content``."""
    thinking_budget: int | None = None
    """``thinkingConfig.thinkingBudget`` (0 turns thinking off on models that allow it; -1 is dynamic)."""
    thinking_level: str | None = None
    """``thinkingConfig.thinkingLevel`` for Gemini 3 models (``low``, ``high``...)."""
    safety_settings: list[dict[str, str]] | None = None
    """Gemini ``safetySettings``, sent as is:
    ``[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]``."""
    thought_signature_in_id: bool = True
    """Carry thought signatures in the tool call id (works with every OpenAI client). When False
    they travel only in ``extra_content.google.thought_signature``."""
    missing_thought_signature: str | None = None
    """Signature sent for a tool call in the history that has none (history from another model).
    Gemini 3 rejects such turns; Google documents ``skip_thought_signature_validator`` for this."""

    # Vertex AI (optional)
    vertex_project: str | None = None
    """Setting it selects Vertex AI's URL shape:
    ``/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``."""
    vertex_location: str = "global"
    access_token: SecretStr | None = None
    """An OAuth2 access token (``gcloud auth print-access-token``) sent as a Bearer token; it is not
    refreshed. Without it, ``api_key`` is sent as ``x-goog-api-key`` (Vertex express mode)."""
    user_project: str | None = None
    """``x-goog-user-project`` (the project billed), for Vertex with user credentials."""


def is_vertex(settings: GeminiSettings) -> bool:
    return settings.vertex_project is not None


def _versioned(base: str, version: str) -> str:
    base = base.rstrip("/")
    return base if _VERSION_TAIL.search(base) else f"{base}/{version}"


def endpoint(settings: GeminiSettings, *, stream: bool) -> str:
    """The ``generateContent`` or ``streamGenerateContent?alt=sse`` URL of this deployment.
    The key is never put in it (URLs end up in logs)."""
    model = settings.model.removeprefix("models/")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    if is_vertex(settings):
        location = settings.vertex_location
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        version = "v1" if settings.api_version == "v1beta" else settings.api_version
        root = _versioned(settings.api_base or f"https://{host}", version)
        project = quote(settings.vertex_project or "", safe="")
        return (
            f"{root}/projects/{project}/locations/{quote(location, safe='')}"
            f"/publishers/google/models/{quote(model, safe='')}:{method}"
        )
    root = _versioned(settings.api_base or DEFAULT_API_BASE, settings.api_version)
    return f"{root}/models/{quote(model, safe='')}:{method}"


def auth_headers(settings: GeminiSettings) -> dict[str, str]:
    headers: dict[str, str] = {}
    if settings.access_token is not None:
        headers["authorization"] = f"Bearer {settings.access_token.get_secret_value()}"
    elif settings.api_key is not None:
        headers["x-goog-api-key"] = settings.api_key.get_secret_value()
    if settings.user_project:
        headers["x-goog-user-project"] = settings.user_project
    return headers


def validate(settings: GeminiSettings) -> None:
    if settings.api_key is None and settings.access_token is None:
        raise ValueError("Gemini needs api_key (GEMINI_API_KEYS), or access_token with vertex_project")
    if settings.access_token is not None and not is_vertex(settings):
        raise ValueError("access_token is for Vertex AI: set vertex_project (and vertex_location) too")


def thinking_config(settings: GeminiSettings) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if settings.include_thoughts is not None:
        config["includeThoughts"] = settings.include_thoughts
    if settings.thinking_budget is not None:
        config["thinkingBudget"] = settings.thinking_budget
    if settings.thinking_level is not None:
        config["thinkingLevel"] = settings.thinking_level
    return config
