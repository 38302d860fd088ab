"""What Claude models reject, as ``ParamRule``s the router applies on the way out (``model_rules``).

Under a deployment's ``unsupported_params: adapt`` (default) the request is rewritten and the change
logged once; under ``fail`` the call is refused with a 400 naming the parameter and the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_factory_core import ChatRequest
from llm_factory_core.providers import ParamRule

from ._models import FAMILIES

__all__ = ["CLAUDE_RULES", "extra_field", "thinking_requested"]

_MIGRATION = "https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4"
_THINKING = "https://platform.claude.com/docs/en/build-with-claude/extended-thinking"

_ONE_SAMPLER = tuple(g for info in FAMILIES if info.one_sampler for g in info.globs)
_THINKERS = tuple(g for info in FAMILIES if info.thinking is not None for g in info.globs)
_NO_THINKING = tuple(g for info in FAMILIES if info.thinking is None for g in info.globs)


def extra_field(request: ChatRequest, name: str) -> Any:
    """A provider field given as a top-level unknown field (the OpenAI SDK's ``extra_body``
    through the gateway) or in ``extra_body`` (library callers); ``extra_body`` wins."""
    if request.extra_body and name in request.extra_body:
        return request.extra_body[name]
    return (request.model_extra or {}).get(name)


def _without_extra(request: ChatRequest, name: str) -> dict[str, Any]:
    update: dict[str, Any] = {}
    if request.extra_body and name in request.extra_body:
        update["extra_body"] = {k: v for k, v in request.extra_body.items() if k != name} or None
    if request.model_extra and name in request.model_extra:
        update[name] = None  # removes the unknown field (apply_model_rules' contract)
    return update


def thinking_requested(request: ChatRequest) -> bool:
    """Whether the request turns thinking on: a ``thinking`` field of type enabled/adaptive, or a
    ``reasoning_effort`` other than ``none`` (the codec maps it to thinking)."""
    thinking = extra_field(request, "thinking")
    if isinstance(thinking, Mapping):
        return thinking.get("type") in ("enabled", "adaptive")
    return request.reasoning_effort not in (None, "none")


def _stops(request: ChatRequest) -> list[str]:
    stop = request.stop
    return [stop] if isinstance(stop, str) else list(stop or [])


def _both_samplers(request: ChatRequest) -> str | None:
    if request.temperature is not None and request.top_p is not None:
        return "temperature and top_p cannot both be specified for this model (top_p is dropped)"
    return None


def _blank_stops(request: ChatRequest) -> str | None:
    if any(not s.strip() for s in _stops(request)):
        return "stop sequences must contain non-whitespace (whitespace-only ones are dropped)"
    return None


def _kept_stops(request: ChatRequest) -> Mapping[str, Any]:
    kept = [s for s in _stops(request) if s.strip()]
    return {"stop": kept or None}


def _effort_without_thinking(request: ChatRequest) -> str | None:
    if request.reasoning_effort not in (None, "none"):
        return f"this model has no extended thinking (reasoning_effort {request.reasoning_effort!r} is dropped)"
    return None


def _thinking_temperature(request: ChatRequest) -> str | None:
    # OpenAI's 0..2 is clamped to Claude's 0..1 by the codec: 1 and above are both "1".
    if thinking_requested(request) and request.temperature is not None and request.temperature < 1:
        return "thinking is not compatible with a temperature other than 1 (temperature is dropped)"
    return None


def _thinking_top_p(request: ChatRequest) -> str | None:
    if thinking_requested(request) and request.top_p is not None and request.top_p < 0.95:
        return "with thinking, top_p must be between 0.95 and 1 (top_p is dropped)"
    return None


def _thinking_top_k(request: ChatRequest) -> str | None:
    if thinking_requested(request) and extra_field(request, "top_k") is not None:
        return "thinking is not compatible with top_k (top_k is dropped)"
    return None


def _thinking_forced_tool(request: ChatRequest) -> str | None:
    choice = request.tool_choice
    if thinking_requested(request) and (choice == "required" or isinstance(choice, Mapping)):
        return "with thinking, tool_choice may only be auto or none (a forced tool_choice becomes auto)"
    return None


CLAUDE_RULES: tuple[ParamRule, ...] = (
    ParamRule(
        "claude.whitespace_stop", "stop", (), _blank_stops, _kept_stops,
        # 400 "stop_sequences: each stop sequence must contain non-whitespace" (any Claude).
        "https://platform.claude.com/docs/en/api/messages (stop_sequences); BerriAI/litellm#3286",
    ),
    ParamRule(
        "claude.one_sampler", "top_p", _ONE_SAMPLER, _both_samplers, lambda r: {"top_p": None}, _MIGRATION
    ),
    ParamRule(
        "claude.no_thinking", "reasoning_effort", _NO_THINKING, _effort_without_thinking,
        lambda r: {"reasoning_effort": None}, _THINKING,
    ),
    ParamRule(
        "claude.thinking_temperature", "temperature", _THINKERS, _thinking_temperature,
        lambda r: {"temperature": None}, _THINKING + "#feature-compatibility",
    ),
    ParamRule(
        "claude.thinking_top_p", "top_p", _THINKERS, _thinking_top_p, lambda r: {"top_p": None},
        _THINKING + "#feature-compatibility",
    ),
    ParamRule(
        "claude.thinking_top_k", "top_k", _THINKERS, _thinking_top_k, lambda r: _without_extra(r, "top_k"),
        _THINKING + "#feature-compatibility",
    ),
    ParamRule(
        "claude.thinking_tool_choice", "tool_choice", _THINKERS, _thinking_forced_tool,
        lambda r: {"tool_choice": "auto"}, _THINKING + "#extended-thinking-with-tool-use",
    ),
)  # fmt: skip
