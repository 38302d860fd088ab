"""Configuration models and turning them into deployments.

``ModelConfig`` holds what every provider shares (provider, model name, key, base URL, routing
weight and limits); provider-specific fields (``api_version``, ``aws_region``...) are validated by
the provider's own ``Settings`` model, so a misspelt field is an error that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._deployment import Deployment
from ._errors import ConfigurationError
from ._first_token import AdaptiveFirstToken
from ._health import CooldownPolicy
from ._plugins import PluginRegistry
from ._provider import Limits, Timeouts, mask_secret
from ._request import RESERVED_EXTRA_BODY

__all__ = [
    "FactoryConfig",
    "ModelConfig",
    "ProviderType",
    "RouterSettings",
    "build_deployments",
    "format_validation_error",
]


class ProviderType(StrEnum):
    """The providers of the original README. Any other string names a third-party plugin."""

    OPENAI = "openai"
    QWEN = "qwen"
    DEEPSEEK = "deepseek"
    CLAUDE = "claude"
    GEMINI = "gemini"


REQUEST_DEFAULT_FIELDS = ("max_tokens", "temperature", "top_p")


class ModelConfig(BaseModel):
    """One deployment: a provider, the model name callers use, a key and where to send it.

    Provider-specific options are accepted as extra keyword arguments and checked by the provider.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, hide_input_in_errors=True)

    provider: ProviderType | str
    model_name: str = Field(min_length=1)
    """The name callers ask for; deployments sharing it are balanced and failed over."""
    api_key: SecretStr | None = None
    api_base: str | None = None
    model: str | None = None
    """The upstream model id when it differs from ``model_name``."""
    name: str | None = None
    """A label for status pages and logs (defaults to provider/model_name#n)."""
    weight: float = Field(default=1.0, gt=0)
    priority: int = 0
    """Lower is preferred; higher priorities are standbys."""
    max_concurrency: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    """Seconds one attempt may take in all."""
    connect_timeout: float | None = Field(default=None, gt=0)
    first_token_timeout: float | None = Field(default=None, gt=0)
    chunk_timeout: float | None = Field(default=None, gt=0)
    """Longest silence between two bytes of a stream, also after it started (the stall limit).
    Default: the attempt ``timeout`` when that is shorter than 60 s, else 60 s."""
    prefill: bool | None = None
    """This deployment continues an assistant message sent last (used by stream continuation):
    ``true`` for an OpenAI-compatible server that does (vLLM, LM Studio, Mistral...), ``false``
    to keep a capable provider out of continuations; unset: as its provider declares."""
    hedge: bool = False
    """Streams only: once an attempt here passes its learnt first-token limit, start the next
    deployment beside it and keep whichever sends content first (``router.adaptive_first_token``)."""
    prefill_params: dict[str, Any] = {}
    """Body fields added to continuation requests only, for servers that need a switch to
    continue (vLLM: ``{continue_final_message: true, add_generation_prompt: false}``)."""
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    default_params: dict[str, Any] = {}
    """Other request parameters applied when a call leaves them unset."""

    @field_validator("provider", mode="before")
    @classmethod
    def _normalise_provider(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, ProviderType):
            value = value.strip().lower()
            try:
                return ProviderType(value)
            except ValueError:
                return value
        return value

    @field_validator("prefill_params")
    @classmethod
    def _prefill_params_own_nothing(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & RESERVED_EXTRA_BODY)
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} cannot be set here: the router owns them "
                "(prefill_params holds only the body switches a server needs to continue a message)"
            )
        return value

    @property
    def provider_key(self) -> str:
        return str(self.provider.value if isinstance(self.provider, ProviderType) else self.provider)

    def __repr__(self) -> str:
        key = mask_secret(self.api_key) if self.api_key else None
        return f"ModelConfig(provider={self.provider_key!r}, model_name={self.model_name!r}, api_key={key!r})"


_LIMITS = Limits()


class RouterSettings(BaseModel):
    """How requests are spread and retried."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    strategy: str = "round_robin"
    """Default load-balancing strategy; each call may override it."""
    num_retries: int = Field(default=2, ge=0, le=10)
    """Extra rounds over a model's deployments after the first, with backoff."""
    timeout: float = Field(default=600.0, gt=0)
    """One deadline for a whole call, every attempt and fallback included."""
    fallbacks: dict[str, list[str]] = {}
    """Model name -> model names tried, in order, when it fails (``gpt-4o: [qwen-plus]``)."""
    retry_backoff: float = Field(default=0.5, ge=0)
    retry_backoff_max: float = Field(default=8.0, ge=0)
    max_cooldown_wait: float = Field(default=10.0, ge=0)
    """Longest cooldown a request waits out (a 429 with Retry-After: 2) rather than falling back."""
    cooldown: float = Field(default=1.0, ge=0)
    """First cooldown after a transient failure; doubles per consecutive failure."""
    cooldown_max: float = Field(default=30.0, ge=0)
    disable_for: float = Field(default=3600.0, ge=0)
    """How long a deployment with a bad key (401/402/403) stays out of service."""
    stream_continuation: bool = False
    """After a committed text stream breaks, ask the next deployment to continue the text
    (assistant prefill) where the provider supports it."""
    adaptive_first_token: AdaptiveFirstToken = AdaptiveFirstToken()
    """A stream whose first content is late by its deployment's recent standards fails over
    (``_first_token``); deployments with a configured ``first_token_timeout`` keep that."""

    # Limits (see ``Limits``): an upstream past one fails over with an error naming the setting.
    max_response_bytes: int = Field(default=_LIMITS.max_response_bytes, ge=1024)
    max_error_body_bytes: int = Field(default=_LIMITS.max_error_body_bytes, ge=1024)
    max_event_bytes: int = Field(default=_LIMITS.max_event_bytes, ge=1024)
    max_uncommitted_bytes: int = Field(default=_LIMITS.max_uncommitted_bytes, ge=1024)
    max_connections: int = Field(default=_LIMITS.max_connections, ge=1)
    max_connections_per_host: int = Field(default=_LIMITS.max_connections_per_host, ge=1)
    """aiohttp transport only (httpx's pool has no per-host cap; ``pool_timeout`` bounds waits)."""
    pool_timeout: float = Field(default=_LIMITS.pool_timeout, gt=0)
    """Seconds a request waits for a free connection before failing over."""

    def cooldown_policy(self) -> CooldownPolicy:
        return CooldownPolicy(base=self.cooldown, max=self.cooldown_max, disable_for=self.disable_for)

    def limits(self) -> Limits:
        return Limits(**{f: getattr(self, f) for f in Limits.__dataclass_fields__})


class FactoryConfig(BaseModel):
    """Everything a factory is built from: the YAML file's shape."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    providers: list[ModelConfig] = []
    router: RouterSettings = RouterSettings()
    server: dict[str, Any] = {}
    """Settings of llm-factory-server (validated there)."""
    state: str | None = None
    """Where deployment health is kept: ``memory`` (default) or a ``redis://`` URL shared by every
    process of a fleet (``$LLM_FACTORY_STATE`` when unset; needs ``llm-factory-core[redis]``)."""


def format_loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(exc: ValidationError, source: str, prefix: Sequence[int | str] = ()) -> str:
    """``config.yaml: providers[1].temperature: Input should be ...`` one line per problem."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = format_loc([*prefix, *err["loc"]])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


_SETTINGS_FROM_CONFIG = ("api_key", "api_base")


def build_deployments(
    configs: Sequence[ModelConfig], registry: PluginRegistry, source: str = "configuration"
) -> list[Deployment]:
    """Validate each config with its provider's settings model and make its deployment."""
    deployments: list[Deployment] = []
    counts: dict[str, int] = {}
    for i, cfg in enumerate(configs):
        cls = registry.provider(cfg.provider_key)
        data: dict[str, Any] = {"model": cfg.model or cfg.model_name}
        data.update({k: getattr(cfg, k) for k in _SETTINGS_FROM_CONFIG if getattr(cfg, k) is not None})
        data.update(cfg.model_extra or {})
        try:
            settings = cls.Settings.model_validate(data)
            cls.validate_settings(settings)
        except ValidationError as exc:
            fields = sorted(set(cls.Settings.model_fields) - {"model"})
            raise ConfigurationError(
                format_validation_error(exc, source, ("providers", i))
                + f"\n(fields provider {cls.key!r} accepts besides the common ones: {', '.join(fields)})"
            ) from None
        except ValueError as exc:
            raise ConfigurationError(f"{source}: providers[{i}]: {exc}") from None
        n = counts[cfg.model_name] = counts.get(cfg.model_name, 0) + 1
        # provider/model_name#n is unique already. No key hint in it: the label travels where
        # keys must not (error bodies sent to every client, /metrics, logs); the masked hint is
        # the status entry's ``api_key`` field only (``Provider.credential_label``).
        label = cfg.name or f"{cls.key}/{cfg.model_name}#{n}"
        base = Timeouts()
        timeouts = Timeouts(
            connect=cfg.connect_timeout or base.connect,
            first_token=cfg.first_token_timeout or base.first_token,
            # The stall limit of a started stream defaults to the attempt limit when that is the
            # shorter one: a 30 s ``timeout`` means no stream sits silent for 60 s.
            chunk=cfg.chunk_timeout or min(base.chunk, cfg.timeout or base.chunk),
            total=cfg.timeout or base.total,
        )
        defaults = {k: getattr(cfg, k) for k in REQUEST_DEFAULT_FIELDS if getattr(cfg, k) is not None}
        defaults.update(cfg.default_params)
        deployments.append(
            Deployment(
                name=label,
                model_name=cfg.model_name,
                provider_cls=cls,
                settings=settings,
                weight=cfg.weight,
                priority=cfg.priority,
                timeouts=timeouts,
                defaults=defaults,
                max_concurrency=cfg.max_concurrency,
                index=i,
                prefill=cfg.prefill,
                adaptive_first_token=cfg.first_token_timeout is None,  # a fixed limit overrides
                hedge=cfg.hedge,
                prefill_params=dict(cfg.prefill_params),
            )
        )
    names = [d.name for d in deployments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"{source}: deployment names must be unique: {', '.join(duplicates)}")
    return deployments
