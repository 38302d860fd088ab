"""Server settings: the YAML ``server:`` section, overlaid by ``LLM_FACTORY_<FIELD>`` variables,
overlaid by command-line flags. Validated here (the core keeps the section as a plain dict)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from llm_factory_core import ConfigurationError

__all__ = ["ServerSettings", "load_settings", "ENV_PREFIX"]

ENV_PREFIX = "LLM_FACTORY_"
_LIST_FIELDS = ("api_keys",)


class ServerSettings(BaseModel):
    """How the gateway listens and behaves; YAML ``server:`` keys or ``LLM_FACTORY_<FIELD>``."""

    model_config = ConfigDict(extra="forbid")

    api_keys: list[SecretStr] = []
    """Client keys accepted as ``Authorization: Bearer <key>`` or ``api-key: <key>``; empty: open."""
    host: str = "127.0.0.1"
    """Loopback by default: exposing the gateway is a deliberate choice (``--host 0.0.0.0``)."""
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest request body accepted (base64 images are large); bigger bodies get 413."""
    log_requests: bool = True
    """One log line per request (id, model, deployment, status, latency, tokens)."""
    log_content: bool = False
    """Also log request messages and reply text (off: prompts often hold personal data)."""
    shutdown_timeout: float = Field(default=30.0, ge=0)
    """Seconds in-flight requests may take to finish after SIGTERM before they are cut."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list):
            value = [v for v in value if not (isinstance(v, str) and not v.strip())]
        return value

    def __repr__(self) -> str:
        shown = self.model_dump(exclude={"api_keys"})
        return f"ServerSettings(api_keys=<{len(self.api_keys)} key(s)>, {shown})"


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for field in ServerSettings.model_fields:
        var = ENV_PREFIX + field.upper()
        if env.get(var):
            out[field] = (var, env[var])
    # the singular form reads naturally for one key
    if "api_keys" not in out and env.get(ENV_PREFIX + "API_KEY"):
        out["api_keys"] = (ENV_PREFIX + "API_KEY", env[ENV_PREFIX + "API_KEY"])
    return out


def _describe(exc: ValidationError, name_of: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        field = str(err["loc"][0]) if err["loc"] else "(top level)"
        msg = "unknown field (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{name_of.get(field, field)}: {msg}")
    return "\n".join(lines)


def load_settings(
    section: Mapping[str, Any] | None,
    env: Mapping[str, str],
    *,
    source: str = "configuration",
    overrides: Mapping[str, Any] | None = None,
) -> ServerSettings:
    """``section`` (YAML ``server:``), then environment variables, then ``overrides`` (flags)."""
    section = dict(section or {})
    fields = ServerSettings.model_fields
    try:
        ServerSettings.model_validate(section)
    except ValidationError as exc:
        raise ConfigurationError(
            _describe(exc, {f: f"{source}: server.{f}" for f in [*fields, *section]})
            + f"\n(server settings: {', '.join(fields)})"
        ) from None
    from_env = _env_values(env)
    merged = {**section, **{field: value for field, (_, value) in from_env.items()}}
    try:
        ServerSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigurationError(
            _describe(exc, {f: f"environment: {var}" for f, (var, _) in from_env.items()})
        ) from None
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return ServerSettings.model_validate({**merged, **flags})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, {f: f"--{f.replace('_', '-')}" for f in flags})) from None
