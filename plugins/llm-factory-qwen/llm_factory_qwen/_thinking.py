"""Qwen's thinking controls: which models think by default or only stream, and how a request's
``reasoning_effort`` becomes DashScope's ``enable_thinking`` / ``thinking_budget`` (pure, no I/O).

Sources (Alibaba Cloud Model Studio, "Deep thinking", help.aliyun.com/zh/model-studio/deep-thinking
and alibabacloud.com/help/en/model-studio/deep-thinking, 2026; "Qwen-Omni", .../qwen-omni):

- Hybrid models take ``enable_thinking``. Commercial Qwen3 models (qwen-plus, qwen-flash,
  qwen-turbo, qwen3-max snapshots with thinking) default to *off*; open-source Qwen3
  (qwen3-235b-a22b, qwen3-32b, ... qwen3-0.6b) and the Qwen3.5+ series (qwen3.5-plus: "其中
  qwen3.5-plus默认开启", quoted in langgenius/dify-official-plugins#2628) default to *on*.
- Open-source Qwen3 with thinking on refuse a non-streaming call: 400 ``parameter.enable_thinking
  must be set to false for non-streaming calls`` (langchain4j#3974, infiniflow/ragflow#8972,
  vybestack/llxprt-code#229 on qwen3-235b-a22b).
- Thinking-only models (QwQ, QVQ, ``*-thinking*`` open models) and Qwen-Omni only stream: 400
  ``This model only support stream mode`` (WEIFENG2333/VideoCaptioner#438 on qwq-plus,
  microsoft/UFO#215 on qwen-omni-turbo, dify-official-plugins#3205 "Qwen-Omni requests must use
  streaming output").
- ``thinking_budget`` caps the reasoning tokens, only with thinking on; the default is the
  model's maximum chain of thought. QwQ/QVQ take no budget.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_factory_core import ChatRequest

__all__ = [
    "REASONING_BUDGETS",
    "STREAM_ONLY_MODELS",
    "THINKING_ONLY_MODELS",
    "THINKING_BY_DEFAULT_MODELS",
    "THINKING_MODELS",
    "ThinkingPlan",
    "explicit_thinking",
    "plan_thinking",
    "thinking_on",
]

log = logging.getLogger("llm_factory_qwen")


def _globs(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(p)) for p in patterns)


STREAM_ONLY_MODELS = ("qwq*", "qvq*", "*omni*", "*-thinking*")
"""Models DashScope only serves as a stream (thinking-only models and Qwen-Omni)."""
THINKING_ONLY_MODELS = ("qwq*", "qvq*", "*-thinking*", "deepseek-r1*")
"""Models that always think: ``enable_thinking: false`` cannot turn them off."""
THINKING_BY_DEFAULT_MODELS = (
    # open-source Qwen3 hybrids: qwen3-0.6b ... qwen3-32b, qwen3-30b-a3b, qwen3-235b-a22b
    "qwen3-*b",
    # the Qwen3.5 generation and later (qwen3.5-plus, qwen3.5-flash, qwen3.6-plus, qwen3.5-397b-a17b)
    "qwen3.[5-9]*",
)
"""Hybrid models that think unless told ``enable_thinking: false``; the open-source ones refuse
a non-streaming call while thinking."""
THINKING_MODELS = (
    *THINKING_BY_DEFAULT_MODELS,
    "qwen-plus*",
    "qwen-flash*",
    "qwen-turbo*",
    "qwen3-max*",
    "qwen3-vl-plus*",
    "qwen3-vl-flash*",
    "qwen3-omni-flash*",
    *THINKING_ONLY_MODELS,
)
"""Models that take ``enable_thinking`` / ``thinking_budget`` (hybrid or thinking-only); others
(qwen-max, qwen2.5 and ``*-instruct*`` models) have no thinking to control."""
_NOT_HYBRID = ("*-instruct*",)

REASONING_BUDGETS: dict[str, int | None] = {
    "low": 4096,
    "medium": 16384,
    "high": 32768,
    "xhigh": None,  # None: no budget, i.e. the model's own maximum chain of thought
    "max": None,
}
"""``reasoning_effort`` -> ``thinking_budget``. The smallest current cap (open-source Qwen3,
qwen-plus) is 38,912 tokens, so every budget here is valid for every thinking model."""
_OFF_EFFORTS = frozenset({"none", "minimal"})

_STREAM_ONLY = _globs(*STREAM_ONLY_MODELS)
_THINKING_ONLY = _globs(*THINKING_ONLY_MODELS)
_BY_DEFAULT = _globs(*THINKING_BY_DEFAULT_MODELS)
_THINKS = _globs(*THINKING_MODELS)
_INSTRUCT = _globs(*_NOT_HYBRID)
_NO_BUDGET = _globs("qwq*", "qvq*", "deepseek*")


def _is(patterns: tuple[re.Pattern[str], ...], model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return any(p.match(name) for p in patterns)


def explicit_thinking(request: ChatRequest) -> Any:
    """The caller's own ``enable_thinking`` (top level, ``extra_body`` or native
    ``extra_body.parameters``), or None."""
    found: Any = None
    for source in _sources(request):
        if "enable_thinking" in source:
            found = source["enable_thinking"]
    return found


def _explicit(request: ChatRequest, key: str) -> bool:
    return any(key in source for source in _sources(request))


def _sources(request: ChatRequest) -> list[Mapping[str, Any]]:
    sources: list[Mapping[str, Any]] = [request.model_extra or {}]
    extra = request.extra_body or {}
    sources.append(extra)
    params = extra.get("parameters")
    if isinstance(params, Mapping):
        sources.append(params)
    return sources


def thinking_on(request: ChatRequest, model: str) -> bool:
    """Whether ``model`` will think for this request as it goes upstream (``request.stream``
    says which call it is): what DashScope's thinking-mode rules are checked against."""
    if _is(_THINKING_ONLY, model):
        return True
    plan = plan_thinking(request, model, stream=request.stream)
    if "enable_thinking" in plan.params:
        return bool(plan.params["enable_thinking"])
    explicit = explicit_thinking(request)
    if explicit is not None:
        return bool(explicit)
    return _is(_BY_DEFAULT, model) and not _is(_INSTRUCT, model)


@dataclass(frozen=True, slots=True)
class ThinkingPlan:
    """What to add to the upstream parameters, and whether a non-streaming call must be made
    as a stream upstream (then aggregated)."""

    params: dict[str, Any]
    stream_upstream: bool


def plan_thinking(request: ChatRequest, model: str, *, stream: bool) -> ThinkingPlan:
    """``reasoning_effort`` -> ``enable_thinking`` / ``thinking_budget``, the caller's own
    ``enable_thinking`` / ``thinking_budget`` winning; and, for a non-streaming call, whether it
    has to go upstream as a stream. A non-streaming call to a model that thinks by default, from
    a caller who asked for no reasoning, gets ``enable_thinking: false``; one with thinking on
    (asked for, or a thinking-only model) or to a stream-only model goes upstream as a stream."""
    params: dict[str, Any] = {}
    thinks = _is(_THINKS, model) and not _is(_INSTRUCT, model)
    thinking_only = _is(_THINKING_ONLY, model)
    explicit = explicit_thinking(request)
    effort = request.reasoning_effort
    if thinks and explicit is None and effort is not None:
        if effort in _OFF_EFFORTS:
            if thinking_only:
                log.debug("qwen: %s always thinks; reasoning_effort=%s is ignored", model, effort)
            else:
                params["enable_thinking"] = False
        else:
            if not thinking_only:
                params["enable_thinking"] = True
            budget = REASONING_BUDGETS.get(effort)
            if budget is not None and not _is(_NO_BUDGET, model) and not _explicit(request, "thinking_budget"):
                params["thinking_budget"] = budget
    elif effort is not None and not thinks:
        log.debug("qwen: %s has no thinking mode; reasoning_effort=%s is ignored", model, effort)
    if stream:
        return ThinkingPlan(params, stream_upstream=False)
    asked = explicit is not None or (thinks and effort is not None)
    if _is(_STREAM_ONLY, model):
        return ThinkingPlan(params, stream_upstream=True)
    if _is(_BY_DEFAULT, model) and thinks and not asked:
        # The caller asked for no reasoning: answer without it rather than stream (new-api #1109).
        params["enable_thinking"] = False
        return ThinkingPlan(params, stream_upstream=False)
    on = params.get("enable_thinking", explicit if explicit is not None else _is(_THINKING_ONLY, model))
    # Thinking on, without stream: streamed upstream on every model. The open-source ones refuse
    # it outright; for the others DashScope documents thinking calls as streams ("多数模型仅支持流式
    # 输出"), and the aggregated reply is the same either way.
    return ThinkingPlan(params, stream_upstream=bool(on) and thinks)
