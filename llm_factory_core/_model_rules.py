"""What a model family accepts, as data: rules a provider plugin declares, applied in one place.

A provider lists ``ParamRule``s in ``Provider.model_rules``; each names the models it concerns
(``fnmatch`` patterns on the upstream model id), says when a request breaks it and how to adapt
the request. The router applies the rules that match a deployment's model on the way out, under
the deployment's policy (``unsupported_params``):

- ``adapt`` (default): the request is rewritten (``max_tokens`` -> ``max_completion_tokens``, a
  penalty dropped...) and the change logged once per deployment and rule;
- ``fail``: the call fails at once with a 400 naming the parameter, the rule and its source.

Rules never mutate the caller's request: a rewritten copy goes upstream (failover shares the
original between deployments).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import BadRequestError
from ._request import ChatRequest

__all__ = ["ParamRule", "UnsupportedParamsPolicy", "apply_model_rules", "rules_for_model"]

log = logging.getLogger("llm_factory_core.model_rules")

UnsupportedParamsPolicy = Literal["adapt", "fail"]


@dataclass(frozen=True, slots=True)
class ParamRule:
    """One thing some models will not take, and how to make a request acceptable to them.

    ``check(request)`` returns None when the request is fine, else a short description of what
    the model rejects (used in the log line and in the ``fail`` policy's error). ``adapt(request)``
    returns the fields to change (a ``model_copy`` update; a value of None drops the field)."""

    name: str
    """Stable id, e.g. ``openai.max_completion_tokens``; shown in logs and errors."""
    param: str
    """The request parameter concerned (``error.param`` under the ``fail`` policy)."""
    models: tuple[str, ...]
    """Case-insensitive ``fnmatch`` patterns on the upstream model id; empty means every model."""
    check: Callable[[ChatRequest], str | None]
    adapt: Callable[[ChatRequest], Mapping[str, Any]]
    source: str
    """Where the provider documents the rule (a URL or an SDK file)."""
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = tuple(re.compile(fnmatch.translate(p.lower())) for p in self.models)
        object.__setattr__(self, "_patterns", patterns)

    def matches(self, model: str) -> bool:
        """Whether this rule concerns the upstream model id ``model``."""
        if not self._patterns:
            return True
        lowered = model.lower()
        # A model id may carry a vendor or region prefix (``us.anthropic.claude-...``,
        # ``models/gemini-...``, an ARN): match the last path segment too.
        tail = lowered.rsplit("/", 1)[-1]
        return any(p.match(lowered) or p.match(tail) for p in self._patterns)


def rules_for_model(rules: Iterable[ParamRule], model: str) -> tuple[ParamRule, ...]:
    """The rules that concern ``model``, computed once per deployment (not per request)."""
    return tuple(rule for rule in rules if rule.matches(model))


_warned: set[tuple[str, str]] = set()


def apply_model_rules(
    request: ChatRequest,
    rules: tuple[ParamRule, ...],
    policy: UnsupportedParamsPolicy,
    *,
    provider: str,
    deployment: str,
) -> ChatRequest:
    """``request`` made acceptable to the deployment's model, or a ``BadRequestError`` under the
    ``fail`` policy. Returns ``request`` itself when no rule applies (the common case)."""
    for rule in rules:
        problem = rule.check(request)
        if problem is None:
            continue
        if policy == "fail":
            raise BadRequestError(
                f"{problem} (rule {rule.name}, see {rule.source}); set unsupported_params: adapt on "
                f"this deployment to have llm-factory adapt the request instead",
                provider=provider,
                deployment=deployment,
                status=400,
                code="unsupported_parameter",
                param=rule.param,
            )
        update = dict(rule.adapt(request))
        request = _updated(request, update)
        if (deployment, rule.name) not in _warned:
            _warned.add((deployment, rule.name))
            log.info("adapted a request for %s: %s (rule %s)", deployment, problem, rule.name)
    return request


def _updated(request: ChatRequest, update: dict[str, Any]) -> ChatRequest:
    """A copy with ``update`` applied; unknown (extra) fields are set or removed too."""
    fields = type(request).model_fields
    known = {k: v for k, v in update.items() if k in fields}
    copy = request.model_copy(update=known)
    extras = {k: v for k, v in update.items() if k not in fields}
    if extras:
        own = dict(copy.__pydantic_extra__ or {})
        for key, value in extras.items():
            if value is None:
                own.pop(key, None)
            else:
                own[key] = value
        object.__setattr__(copy, "__pydantic_extra__", own)
    return copy
