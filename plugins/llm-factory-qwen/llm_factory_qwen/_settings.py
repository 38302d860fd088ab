"""Settings of a Qwen deployment and the choice between DashScope's two APIs.

The API is chosen by ``api_base``, the way DashScope's own documentation hands out URLs:
``.../api/v1`` is the native API (``/services/aigc/{text,multimodal}-generation/generation``),
``.../compatible-mode/v1`` is the OpenAI-compatible one. No ``api_base`` means Beijing's native API.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llm_factory_core.providers import ProviderSettings

from ._embeddings import MAX_BATCH

__all__ = [
    "COMPATIBLE_SUFFIX",
    "DEFAULT_COMPATIBLE_BASE",
    "DEFAULT_NATIVE_BASE",
    "NATIVE_SUFFIX",
    "REGION_HOSTS",
    "QwenSettings",
    "api_mode",
]

NATIVE_SUFFIX = "/api/v1"
COMPATIBLE_SUFFIX = "/compatible-mode/v1"
REGION_HOSTS = {
    "beijing": "https://dashscope.aliyuncs.com",
    "singapore": "https://dashscope-intl.aliyuncs.com",
    "virginia": "https://dashscope-us.aliyuncs.com",
}
"""DashScope's public hosts. API keys are per region: a Beijing key fails in Singapore."""
DEFAULT_NATIVE_BASE = REGION_HOSTS["beijing"] + NATIVE_SUFFIX
DEFAULT_COMPATIBLE_BASE = REGION_HOSTS["beijing"] + COMPATIBLE_SUFFIX

Mode = Literal["native", "compatible"]


class QwenSettings(ProviderSettings):
    """``provider: qwen`` options besides model, api_key, api_base and headers."""

    mode: Mode | None = None
    """Force the API (``native`` / ``compatible``) when ``api_base`` is a proxy URL whose path
    says neither; by default it follows the ``api_base`` suffix."""
    multimodal: bool | None = None
    """Force (True) or forbid (False) the native multimodal-generation path; by default VL /
    omni / audio models and requests carrying image, audio or video parts use it."""
    workspace: str | None = None
    """A DashScope workspace id, sent as ``X-DashScope-WorkSpace`` (as the SDK does)."""
    embedding_batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH)
    """Texts per upstream embeddings request; by default the model's limit (10 on
    text-embedding-v3/v4, 25 on v1/v2). A longer list is sent in several requests, merged in order."""


def api_mode(settings: QwenSettings) -> Mode:
    """Which API a deployment speaks; raise ValueError for an ``api_base`` that says neither."""
    if settings.mode is not None:
        return settings.mode
    base = settings.api_base
    if base is None or base.endswith(NATIVE_SUFFIX):
        return "native"
    if base.endswith(COMPATIBLE_SUFFIX):
        return "compatible"
    raise ValueError(
        f"qwen: api_base must end in {NATIVE_SUFFIX} (DashScope's native API) or "
        f"{COMPATIBLE_SUFFIX} (its OpenAI-compatible mode), for example "
        f"{DEFAULT_NATIVE_BASE}; or set mode: native|compatible for a proxy URL"
    )
