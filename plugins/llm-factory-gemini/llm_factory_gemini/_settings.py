"""Settings of a Gemini deployment and the URLs and headers they imply (pure functions)."""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import quote

from pydantic import Field, SecretStr

from llm_factory_core.providers import ProviderSettings

from ._models import family_of

__all__ = [
    "DEFAULT_API_BASE",
    "SKIP_SIGNATURE",
    "GeminiSettings",
    "auth_headers",
    "embeddings_endpoint",
    "endpoint",
    "is_vertex",
    "uses_google_auth",
    "validate",
]

log = logging.getLogger("llm_factory_gemini")

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
SKIP_SIGNATURE = "skip_thought_signature_validator"
"""Google's documented value for a function call whose signature is unknown
(https://ai.google.dev/gemini-api/docs/thought-signatures, FAQ)."""
_VERSION_TAIL = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?$")


class GeminiSettings(ProviderSettings):
    api_version: str = "v1beta"
    """Added to ``api_base`` unless the base already ends in a version (``.../v1``)."""
    include_thoughts: bool | None = None
    """Ask for thought summaries (``thinkingConfig.includeThoughts``); they become ``reasoning_content``."""
    thinking_budget: int | None = None
    """``thinkingConfig.thinkingBudget`` for Gemini 2.5 (0 turns thinking off where the model
    allows it; -1 is dynamic). A request's ``reasoning_effort`` wins over it."""
    thinking_level: str | None = None
    """``thinkingConfig.thinkingLevel`` for Gemini 3 and later (``minimal``, ``low``, ``medium``,
    ``high``, as the model allows). A request's ``reasoning_effort`` wins over it."""
    safety_settings: list[dict[str, str]] | None = None
    """Gemini ``safetySettings``, sent as is:
    ``[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]``."""
    thought_signature_in_id: bool = False
    """Deprecated and ignored (accepted so existing configurations still load). Signatures used to
    be packed into tool call ids, which made ids too long for OpenAI and Azure; they now travel in
    ``extra_content.google.thought_signature`` and are remembered by tool call id."""
    missing_thought_signature: str | None = SKIP_SIGNATURE
    """Signature sent on the first function call of a model turn that has none (history from
    another provider, or a client that dropped it and a process that forgot it). Google documents
    ``skip_thought_signature_validator`` for this; None sends nothing (Gemini 3 then answers 400)."""

    # Vertex AI (optional)
    vertex_project: str | None = None
    """Setting it selects Vertex AI's URL shape:
    ``/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``."""
    vertex_location: str = "global"
    access_token: SecretStr | None = None
    """A fixed OAuth2 access token (``gcloud auth print-access-token``) sent as a Bearer token; it
    is never refreshed (about an hour). Prefer ``use_adc`` or ``credentials_file``."""
    use_adc: bool = False
    """Vertex with Application Default Credentials (``google.auth.default()``: the
    ``GOOGLE_APPLICATION_CREDENTIALS`` file, ``gcloud auth application-default login``, or the
    metadata server), refreshed before they expire. Needs ``llm-factory-gemini[vertex]``."""
    credentials_file: str | None = None
    """Vertex with a service-account key file (or any google-auth credentials file), refreshed
    before expiry. Needs ``llm-factory-gemini[vertex]``."""
    token_refresh_margin: float = Field(default=300.0, ge=0)
    """Seconds before expiry at which a token is refreshed in the background."""
    user_project: str | None = None
    """``x-goog-user-project`` (the project billed), for Vertex with user credentials."""

    # Embeddings (``batchEmbedContents``)
    embedding_batch_size: int = Field(default=100, ge=1, le=100)
    """Inputs per ``batchEmbedContents`` call (Gemini takes at most 100); longer lists are sent
    in several calls and merged in order."""
    embedding_task_type: str | None = None
    """The ``taskType`` sent with every input (``RETRIEVAL_DOCUMENT``, ``RETRIEVAL_QUERY``,
    ``SEMANTIC_SIMILARITY``...); a call's ``task_type`` extra wins over it."""
    normalize_embeddings: bool = True
    """Scale vectors to unit length, as OpenAI's are (Gemini normalises only the full 3072
    dimensions of gemini-embedding-001; shortened ones need it for cosine similarity)."""


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


def embeddings_endpoint(settings: GeminiSettings) -> str:
    """The ``batchEmbedContents`` URL of a Gemini API deployment (Vertex is not served)."""
    model = settings.model.removeprefix("models/")
    root = _versioned(settings.api_base or DEFAULT_API_BASE, settings.api_version)
    return f"{root}/models/{quote(model, safe='')}:batchEmbedContents"


def auth_headers(settings: GeminiSettings) -> dict[str, str]:
    """The fixed auth headers (a refreshed Bearer token is added per request by the provider)."""
    headers: dict[str, str] = {}
    if settings.access_token is not None:
        headers["authorization"] = f"Bearer {settings.access_token.get_secret_value()}"
    elif settings.api_key is not None and not uses_google_auth(settings):  # the provider adds the Bearer token
        headers["x-goog-api-key"] = settings.api_key.get_secret_value()
    if settings.user_project:
        headers["x-goog-user-project"] = settings.user_project
    return headers


def uses_google_auth(settings: GeminiSettings) -> bool:
    """Whether this deployment gets its Bearer tokens from google-auth (refreshed)."""
    return settings.use_adc or settings.credentials_file is not None


def validate(settings: GeminiSettings) -> None:
    credentials = [
        name
        for name, given in (
            ("access_token", settings.access_token is not None),
            ("use_adc", settings.use_adc),
            ("credentials_file", settings.credentials_file is not None),
        )
        if given
    ]
    if settings.api_key is None and not credentials:
        raise ValueError(
            "Gemini needs api_key (GEMINI_API_KEYS); for Vertex AI, vertex_project plus use_adc: true, "
            "credentials_file or access_token"
        )
    if len(credentials) > 1:
        raise ValueError(f"set only one of {', '.join(credentials)}: each is a way to get Vertex tokens")
    if credentials and not is_vertex(settings):
        raise ValueError(f"{credentials[0]} is for Vertex AI: set vertex_project (and vertex_location) too")
    if settings.credentials_file is not None and not os.path.isfile(settings.credentials_file):
        raise ValueError(f"credentials_file {settings.credentials_file!r} is not a file (a google-auth key file)")
    _validate_thinking(settings)
    if settings.thought_signature_in_id:
        log.warning(
            "thought_signature_in_id is deprecated and ignored: thought signatures travel in "
            "tool_calls[].extra_content.google.thought_signature and are remembered by tool call id"
        )


def _validate_thinking(settings: GeminiSettings) -> None:
    if settings.thinking_level is not None and settings.thinking_budget is not None:
        raise ValueError(
            "set thinking_level (Gemini 3 and later) or thinking_budget (Gemini 2.5), not both: "
            "Gemini rejects a request that carries both"
        )
    family = family_of(settings.model)
    level = settings.thinking_level
    if level is not None and family.name != "other":
        if not family.uses_levels:
            raise ValueError(
                f"{settings.model} does not take thinking_level (Gemini 3 and later do); use thinking_budget"
            )
        if level.lower() not in family.levels:
            raise ValueError(f"{settings.model} takes thinking_level {', '.join(family.levels)}, not {level!r}")
    budget = settings.thinking_budget
    if budget == 0 and not family.can_disable:
        fix = f"use thinking_level {family.levels[0]}" if family.uses_levels else f"use at least {family.budget_min}"
        raise ValueError(
            f"{settings.model} cannot turn thinking off (thinking_budget 0); {fix}, or -1 for dynamic thinking"
        )
