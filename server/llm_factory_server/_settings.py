"""Server settings: the YAML ``server:`` section, overlaid by ``LLM_FACTORY_<FIELD>`` variables,
overlaid by command-line flags. Validated here (the core keeps the section as a plain dict)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from llm_factory_core import ConfigurationError

from ._tracing import TracingSettings
from .ops._prices import Price

__all__ = ["ServerSettings", "load_settings", "ENV_PREFIX"]

ENV_PREFIX = "LLM_FACTORY_"
_LIST_FIELDS = ("api_keys", "allowed_hosts")


class ServerSettings(BaseModel):
    """How the gateway listens and behaves; YAML ``server:`` keys or ``LLM_FACTORY_<FIELD>``."""

    model_config = ConfigDict(extra="forbid")

    api_keys: list[SecretStr] = []
    """Client keys accepted as ``Authorization: Bearer <key>``, ``api-key: <key>`` or ``x-api-key: <key>``; empty: open.
    Printable ASCII without spaces; a blank one (``${GATEWAY_KEY}`` set to nothing) is an error,
    never a silently open gateway."""
    allowed_hosts: list[str] | None = None
    """``Host`` names (with or without port) the gateway answers; ``*`` allows any. Unset: with
    client keys, any; without (the open default), only ``localhost``, ``127.0.0.1``, ``::1`` and
    ``host``, so a web page cannot reach the open gateway through DNS rebinding."""
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
    limit_concurrency: int | None = Field(default=1000, ge=1)
    """Connections and requests in flight per worker: beyond it requests get 503 and further
    connections are closed at once (None: no limit)."""
    timeout_keep_alive: float = Field(default=75.0, gt=0)
    """Seconds an idle keep-alive connection stays open between requests. Longer than the
    clients' own idle limits (httpx and so the openai SDK: 5 s; aiohttp: 15 s; AWS ALB and nginx
    upstream pools: 60 s): a server that closes first races the client's next request on that
    connection, which then fails with a reset (a 502 behind a load balancer). nginx's default."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's line and headers (from the connection, or from
    the request's first byte); slower clients get 408 and are disconnected (slowloris)."""
    body_timeout: float = Field(default=60.0, gt=0)
    """Seconds a client has to send a request's body once its headers are in (408 after)."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Largest request line plus headers accepted; bigger heads get 431 before any route runs."""
    tracing: TracingSettings = TracingSettings()
    """OpenTelemetry spans, exported with OTLP (``_tracing``); also the standard ``OTEL_*`` variables."""
    admin_key: SecretStr | None = None
    """Key of the admin API (``/admin/...``: client keys, usage); setting it turns managed client keys
    on. Never accepted as a client key. Blank is an error, as for ``api_keys``."""
    usage_db: str | None = None
    """SQLite file of managed keys and usage records (default ``$XDG_STATE_HOME/llm-factory/usage.sqlite3``)."""
    usage_queue: int = Field(default=10_000, ge=1)
    """Usage records waiting to be written at most; beyond, records are dropped and counted in /metrics."""
    prices: dict[str, Price] = {}
    """USD per million tokens by deployment name, model name or upstream model; else genai-prices' table."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(_BLANK_KEY)
            # "k1, k2," reads naturally: empty parts of a list written as one string are skipped
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, list):
            for i, key in enumerate(value):
                if isinstance(key, SecretStr):
                    key = key.get_secret_value()
                if isinstance(key, str):
                    key = value[i] = key.strip()
                    if not key:
                        raise ValueError(f"key {i + 1}: {_BLANK_KEY}")
                    if not all(33 <= ord(c) < 127 for c in key):
                        raise ValueError(f"key {i + 1} is not printable ASCII without spaces (HTTP headers carry it)")
        return value

    @field_validator("admin_key", mode="before")
    @classmethod
    def _admin_key(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("the admin key is blank (a variable that expands to nothing?); set or remove it")
            if len(value) < 16 or not all(33 <= ord(c) < 127 for c in value):
                raise ValueError("use at least 16 printable ASCII characters without spaces (HTTP headers carry it)")
        return value

    @model_validator(mode="after")
    def _admin_is_not_a_client_key(self) -> ServerSettings:
        if self.admin_key is not None and any(
            k.get_secret_value() == self.admin_key.get_secret_value() for k in self.api_keys
        ):
            raise ValueError("admin_key must differ from every key in api_keys (the admin key is never a client key)")
        return self

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_not_blank(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value or any(not h.strip() for h in value):
                raise ValueError("list the host names clients use, or '*' for any")
            value = [h.strip().lower() for h in value]
        return value

    def __repr__(self) -> str:
        shown = self.model_dump(exclude={"api_keys"})
        return f"ServerSettings(api_keys=<{len(self.api_keys)} key(s)>, {shown})"


_BLANK_KEY = (
    "a client key is empty or blank (a variable that expands to nothing?); the gateway would be "
    "open to anyone. Set the key, or remove the setting to run without client keys"
)


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for field in ServerSettings.model_fields:
        var = ENV_PREFIX + field.upper()
        if env.get(var):
            out[field] = (var, env[var])
    # the singular form reads naturally for one key
    if "api_keys" not in out and env.get(ENV_PREFIX + "API_KEY"):
        out["api_keys"] = (ENV_PREFIX + "API_KEY", env[ENV_PREFIX + "API_KEY"])
    # Set but empty (``-e LLM_FACTORY_API_KEYS=$KEY`` with $KEY unset): fail closed, not open.
    for var in (ENV_PREFIX + "API_KEYS", ENV_PREFIX + "API_KEY"):
        if "api_keys" not in out and var in env:
            out["api_keys"] = (var, env[var])
    if "admin_key" not in out and ENV_PREFIX + "ADMIN_KEY" in env:  # set but empty: an error, not "off"
        out["admin_key"] = (ENV_PREFIX + "ADMIN_KEY", env[ENV_PREFIX + "ADMIN_KEY"])
    return out


def _describe(exc: ValidationError, name_of: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        field = str(err["loc"][0]) if err["loc"] else "(top level)"
        msg = "unknown field (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        nested = "".join(f".{part}" for part in err["loc"][1:])  # server.tracing.endpont
        lines.append(f"{name_of.get(field, field)}{nested}: {msg}")
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
