"""Settings of a Claude deployment and the choices derived from them (host mode, region, auth kind).

Every field is also read from the environment as ``CLAUDE_<FIELD>`` by the core
(``CLAUDE_AWS_REGION``, ``CLAUDE_AWS_ACCESS_KEY_ID``...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

from llm_factory_core.providers import ProviderSettings

__all__ = [
    "ANTHROPIC_API_BASE",
    "ANTHROPIC_VERSION",
    "BEDROCK_ANTHROPIC_VERSION",
    "AuthKind",
    "ClaudeSettings",
    "Mode",
    "auth_kind",
    "bedrock_region",
    "resolve_mode",
]

Mode = Literal["bedrock", "anthropic"]
AuthKind = Literal["bearer", "static", "profile", "bearer_env", "chain", "api_key"]

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header of Anthropic's own API."""
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
"""The ``anthropic_version`` body field Bedrock's InvokeModel requires for Claude."""
BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"
"""botocore's variable for a Bedrock API key (``AWS_BEARER_TOKEN_<signing name>``)."""

_REGION_IN_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.")


class ClaudeSettings(ProviderSettings):
    """Claude on AWS Bedrock (default) or on Anthropic's Messages API.

    ``api_key`` is a Bedrock API key (sent as a bearer token) in Bedrock mode and an Anthropic
    key (``x-api-key``) in Anthropic mode.
    """

    mode: Mode | None = None
    """``bedrock`` or ``anthropic``; by default chosen from api_base's host (``*.anthropic.com``
    is Anthropic) or an ``sk-ant-`` key without api_base; otherwise Bedrock."""
    aws_region: str | None = None
    """Bedrock region; defaults to AWS_REGION / AWS_DEFAULT_REGION, the api_base host, the profile."""
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_profile: str | None = None
    """A named profile of ~/.aws/config (SSO, assume-role, credential_process... all work)."""
    anthropic_version: str | None = None
    """Overrides ``anthropic-version`` (Anthropic) or the ``anthropic_version`` body field (Bedrock)."""
    anthropic_beta: list[str] | None = None
    """Beta feature flags (``anthropic-beta`` header on Anthropic, ``anthropic_beta`` body on Bedrock)."""
    default_max_tokens: int | None = None
    """Claude requires max_tokens; used when neither the call nor the deployment sets it. By
    default the model family's output limit, at most 32,000 (``_models.default_max_tokens``)."""
    structured_output: Literal["auto", "native", "tool"] = "auto"
    """``response_format`` json_schema as Claude's ``output_config.format`` (``native``), as a
    forced tool call (``tool``), or by model family (``auto``: native on Sonnet/Haiku 4.5, Opus
    4.5 and later)."""
    guardrail_identifier: str | None = None
    """A Bedrock guardrail applied to every call (``X-Amzn-Bedrock-GuardrailIdentifier``)."""
    guardrail_version: str | None = None

    @field_validator("anthropic_beta", mode="before")
    @classmethod
    def _split_beta(cls, value: object) -> object:
        # From the environment the list arrives as "a,b".
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("aws_region", "aws_profile", "aws_access_key_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value


def resolve_mode(settings: ClaudeSettings) -> Mode:
    if settings.mode is not None:
        return settings.mode
    if settings.api_base:
        host = (urlsplit(settings.api_base).hostname or "").lower()
        return "anthropic" if host == "anthropic.com" or host.endswith(".anthropic.com") else "bedrock"
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    return "anthropic" if key.startswith("sk-ant-") else "bedrock"


def auth_kind(settings: ClaudeSettings, environ: Mapping[str, str] | None = None) -> AuthKind:
    """How a deployment authenticates. Explicit configuration wins over the environment, and the
    Bedrock-specific bearer variable over the generic AWS credential chain."""
    env = os.environ if environ is None else environ
    if resolve_mode(settings) == "anthropic":
        return "api_key"
    if settings.api_key is not None:
        return "bearer"
    if settings.aws_access_key_id or settings.aws_secret_access_key:
        return "static"
    if settings.aws_profile:
        return "profile"
    if env.get(BEARER_ENV):
        return "bearer_env"
    return "chain"


def bedrock_region(settings: ClaudeSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The region from configuration, then AWS_REGION / AWS_DEFAULT_REGION, then the api_base host
    (``bedrock-runtime.<region>.amazonaws.com``, VPC endpoints alike). The profile's region is
    looked up by the credentials module, which already loads the profile."""
    env = os.environ if environ is None else environ
    if settings.aws_region:
        return settings.aws_region
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(var):
            return env[var].strip()
    if settings.api_base and (match := _REGION_IN_HOST.search(urlsplit(settings.api_base).hostname or "")):
        return match.group(1)
    return None
