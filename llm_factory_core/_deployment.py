"""A deployment: one configured target (provider + key + base URL + upstream model) of a model name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._model_rules import ParamRule, rules_for_model
from ._provider import Provider, ProviderSettings, Timeouts

__all__ = ["Deployment"]


@dataclass(eq=False, slots=True)
class Deployment:
    name: str
    """Unique label: ``provider/model_name#index`` (never key material); safe to log."""
    model_name: str
    """The name callers ask for."""
    provider_cls: type[Provider]
    settings: ProviderSettings
    weight: float = 1.0
    priority: int = 0
    """Lower is preferred: balancing happens within the best available priority."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    defaults: dict[str, Any] = field(default_factory=dict)
    """Request parameters applied when the caller leaves them unset (max_tokens, temperature...)."""
    max_concurrency: int | None = None
    """At most this many requests in flight; a full deployment is skipped like a cooling one."""
    index: int = 0
    """Position in the configuration (first_available and tie-breaks use it)."""
    prefill: bool | None = None
    """Continues an assistant message sent last (stream continuation); None: as the provider
    declares (``Capabilities.prefill``)."""
    prefill_params: dict[str, Any] = field(default_factory=dict)
    """Body fields added to continuation requests only (vLLM: ``continue_final_message``)."""
    hedge: bool = False
    """Past its learnt first-token limit, start the next deployment beside it (``_hedge``)."""
    adaptive_first_token: bool = True
    """Learn a first-token limit from recent replies (off when ``first_token_timeout`` is set)."""
    rules: tuple[ParamRule, ...] = field(init=False)
    """The provider's model rules that concern this deployment's upstream model (computed once)."""

    def __post_init__(self) -> None:
        self.rules = rules_for_model(self.provider_cls.model_rules, self.settings.model)

    @property
    def provider_key(self) -> str:
        return self.provider_cls.key

    @property
    def masked_key(self) -> str:
        return self.provider_cls.credential_label(self.settings) or "<none>"

    def __repr__(self) -> str:
        return f"Deployment({self.name!r})"
