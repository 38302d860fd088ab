"""What OpenAI's reasoning models refuse, as data (``OpenAIProvider.model_rules``), applied by the
router under each deployment's ``unsupported_params`` policy (``adapt``, the default, or ``fail``).

The rules match the deployment's upstream model id, ``model`` (on Azure: the model the deployment
serves, while ``deployment`` names the deployment; see the README). Families:

- **Reasoning models**: the o-series (``o1``, ``o3``, ``o3-mini``, ``o4-mini``...) and every gpt-5
  model (``gpt-5``, ``gpt-5-mini``, ``gpt-5-nano``, ``gpt-5.1``, ``gpt-5.2``, ``gpt-5.4``, their
  ``-chat`` variants...), also ``codex-mini``. They reject ``max_tokens``: 400 ``Unsupported
  parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
  instead.`` (code ``unsupported_parameter``; openai-python ``completion_create_params.py``:
  "not compatible with o-series models"; the same on Azure: nashsu/llm_wiki#610 for gpt-5.4,
  Zackriya-Solutions/meetily#364 for gpt-5.1/5.2-chat, BerriAI/litellm#13432). Adapted: the value
  moves to ``max_completion_tokens`` (a caller's own ``max_completion_tokens`` wins).
- **Sampling controls**: the o-series and gpt-5 / -mini / -nano take only the default
  ``temperature`` (1) and ``top_p`` (1): 400 ``Unsupported value: 'temperature' does not support 0.7
  with this model. Only the default (1) value is supported.`` (code ``unsupported_value``;
  OpenHands#4131 on o1-mini, QwenLM/qwen-code#921 on gpt-5-mini, holoviz/lumen#1087 on Azure).
  gpt-5.1 and later take ``temperature``, ``top_p`` and ``logprobs`` only with ``reasoning_effort:
  "none"`` (OpenAI's latest-model guide, vercel/ai#10932; johny-b/llmcomp#69 shows gpt-5.4
  refusing ``temperature`` otherwise), so they are kept when the request says ``none`` and
  dropped otherwise. ``*-chat`` models are not reasoning models for sampling and keep them
  (BerriAI/litellm#13781 on gpt-5-chat-latest).
- **Penalties, logprobs, logit_bias**: not supported by reasoning models (Azure OpenAI "reasoning
  models" guide, "Not supported": temperature, top_p, presence_penalty, frequency_penalty,
  logprobs, top_logprobs, logit_bias, max_tokens). Non-default values are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llm_factory_core import ChatRequest
from llm_factory_core.providers import ParamRule

__all__ = ["OPENAI_RULES", "REASONING_MODELS"]

REASONING_MODELS: tuple[str, ...] = (
    "o1",
    "o1-*",
    "o3",
    "o3-*",
    "o4",
    "o4-*",
    "gpt-5",
    "gpt-5-*",
    "gpt-5.*",
    "codex-mini*",
)
"""``fnmatch`` globs of OpenAI's reasoning models (matched case-insensitively on the model id and
its last path segment, so ``openai/o3`` and ``azure/gpt-5.1`` match too)."""

_FIXED_SAMPLING_MODELS = ("o1", "o1-*", "o3", "o3-*", "o4", "o4-*", "gpt-5", "gpt-5-*", "codex-mini*")
"""Models that take only the default sampling controls, whatever the reasoning effort."""
_SAMPLING_WITH_EFFORT_NONE = ("gpt-5.*",)
"""gpt-5.1 and later: sampling controls only with ``reasoning_effort: "none"``."""

_MAX_TOKENS_SOURCE = (
    "openai-python src/openai/types/chat/completion_create_params.py (max_tokens: not compatible "
    "with o-series models); Azure OpenAI reasoning models guide"
)
_SAMPLING_SOURCE = (
    "https://platform.openai.com/docs/guides/reasoning#limitations; OpenAI latest-model guide "
    "(gpt-5.1+: temperature/top_p/logprobs only with reasoning_effort none)"
)
_UNSUPPORTED_SOURCE = "https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning (Not supported)"


def _max_tokens(request: ChatRequest) -> str | None:
    if request.max_tokens is None:
        return None
    return "max_tokens is not supported by this reasoning model (it takes max_completion_tokens)"


def _to_max_completion_tokens(request: ChatRequest) -> Mapping[str, Any]:
    update: dict[str, Any] = {"max_tokens": None}
    if request.max_completion_tokens is None:
        update["max_completion_tokens"] = request.max_tokens
    return update


_NEUTRAL: dict[str, Any] = {
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
}
"""Values equal to the API's default: harmless, accepted by every model, so sent unchanged."""


def _set(request: ChatRequest, name: str) -> bool:
    value = getattr(request, name, None)
    if value is None:
        return False
    return name not in _NEUTRAL or value != _NEUTRAL[name]


def _check(name: str, why: str, *, unless_effort_none: bool = False) -> Callable[[ChatRequest], str | None]:
    def check(request: ChatRequest) -> str | None:
        if not _set(request, name) or (unless_effort_none and request.reasoning_effort == "none"):
            return None
        return f"{name}={getattr(request, name)!r} is not supported by this reasoning model {why}"

    return check


def _drop(name: str) -> Callable[[ChatRequest], Mapping[str, Any]]:
    def adapt(request: ChatRequest) -> Mapping[str, Any]:
        return {name: None}

    return adapt


class _NotChat(ParamRule):
    """A rule of reasoning models that their ``-chat`` variants (gpt-5-chat-latest...) do not follow:
    those accept sampling controls (BerriAI/litellm#13781)."""

    __slots__ = ()

    def matches(self, model: str) -> bool:
        tail = model.lower().rsplit("/", 1)[-1]
        return "-chat" not in tail and ParamRule.matches(self, model)


_SAMPLING = ("temperature", "top_p", "logprobs", "top_logprobs")
_ALWAYS_UNSUPPORTED = ("presence_penalty", "frequency_penalty", "logit_bias")

OPENAI_RULES: tuple[ParamRule, ...] = (
    ParamRule(
        "openai.max_completion_tokens",
        "max_tokens",
        REASONING_MODELS,
        _max_tokens,
        _to_max_completion_tokens,
        _MAX_TOKENS_SOURCE,
    ),
    *(
        _NotChat(
            f"openai.reasoning_{name}",
            name,
            _FIXED_SAMPLING_MODELS,
            _check(name, "(only the default value is accepted)"),
            _drop(name),
            _SAMPLING_SOURCE,
        )
        for name in _SAMPLING
    ),
    *(
        _NotChat(
            f"openai.reasoning_effort_{name}",
            name,
            _SAMPLING_WITH_EFFORT_NONE,
            _check(name, "unless reasoning_effort is 'none'", unless_effort_none=True),
            _drop(name),
            _SAMPLING_SOURCE,
        )
        for name in _SAMPLING
    ),
    *(
        _NotChat(
            f"openai.reasoning_{name}",
            name,
            REASONING_MODELS,
            _check(name, "(reasoning models do not take it)"),
            _drop(name),
            _UNSUPPORTED_SOURCE,
        )
        for name in _ALWAYS_UNSUPPORTED
    ),
)
