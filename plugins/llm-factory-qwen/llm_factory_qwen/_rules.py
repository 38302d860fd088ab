"""What DashScope's Qwen models refuse, as data (``QwenProvider.model_rules``), applied by the
router under each deployment's ``unsupported_params`` policy (adapt, the default, or fail).

- ``tool_choice: "required"``: DashScope takes only ``"none"``, ``"auto"`` or a named function,
  400 ``tool_choice is one of the strings that should be ["none", "auto"]`` (pydantic/pydantic-ai
  #1265; Model Studio API reference, ``tool_choice``). Adapted to ``auto``.
- A named ``tool_choice`` in thinking mode: 400 ``InternalError.Algo.InvalidParameter: The
  tool_choice parameter does not support being set to required or object in thinking mode``
  (cloudwego/eino#994 on qwen3.5-plus, agentscope-ai/agentscope#1608 on qwen3.8-max,
  QwenLM/qwen-code#7659 and PR #7661). Adapted by dropping it (DashScope's default is ``auto``).
  Whether thinking is on follows ``_thinking.thinking_on``: the model's default, the caller's
  ``enable_thinking`` or ``reasoning_effort``, and the non-streaming default of ``false``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llm_factory_core import ChatRequest
from llm_factory_core.providers import ParamRule

from ._thinking import THINKING_BY_DEFAULT_MODELS, THINKING_MODELS, THINKING_ONLY_MODELS, thinking_on

__all__ = ["QWEN_RULES"]

_REQUIRED_SOURCE = (
    "https://www.alibabacloud.com/help/en/model-studio/qwen-api-reference (tool_choice: none, auto "
    "or a named function); pydantic/pydantic-ai#1265"
)
_THINKING_SOURCE = (
    "https://www.alibabacloud.com/help/en/model-studio/deep-thinking; cloudwego/eino#994 "
    "(400 'The tool_choice parameter does not support being set to required or object in thinking mode')"
)
_ALWAYS_THINKING = THINKING_ONLY_MODELS
_BY_DEFAULT = THINKING_BY_DEFAULT_MODELS
_OFF_BY_DEFAULT = tuple(m for m in THINKING_MODELS if m not in (*_BY_DEFAULT, *_ALWAYS_THINKING))


def _required(request: ChatRequest) -> str | None:
    if request.tool_choice == "required":
        return 'tool_choice "required" is not accepted by DashScope (only "none", "auto" or a named function)'
    return None


def _to_auto(request: ChatRequest) -> Mapping[str, Any]:
    return {"tool_choice": "auto"}


def _named_in_thinking(representative: str) -> Callable[[ChatRequest], str | None]:
    """A check for one family of thinking models, named by a member that behaves like all of
    them (the rule's ``models`` globs pick the family; the check sees only the request)."""

    def check(request: ChatRequest) -> str | None:
        if isinstance(request.tool_choice, dict) and thinking_on(request, representative):
            return "a named tool_choice is not accepted by Qwen in thinking mode (only none or auto)"
        return None

    return check


def _drop(request: ChatRequest) -> Mapping[str, Any]:
    return {"tool_choice": None}


QWEN_RULES: tuple[ParamRule, ...] = (
    ParamRule("qwen.tool_choice_required", "tool_choice", (), _required, _to_auto, _REQUIRED_SOURCE),
    ParamRule(
        "qwen.tool_choice_thinking_only",
        "tool_choice",
        _ALWAYS_THINKING,
        _named_in_thinking("qwq-plus"),
        _drop,
        _THINKING_SOURCE,
    ),
    ParamRule(
        "qwen.tool_choice_thinking_by_default",
        "tool_choice",
        _BY_DEFAULT,
        _named_in_thinking("qwen3.5-plus"),
        _drop,
        _THINKING_SOURCE,
    ),
    ParamRule(
        "qwen.tool_choice_thinking_enabled",
        "tool_choice",
        _OFF_BY_DEFAULT,
        _named_in_thinking("qwen-plus"),
        _drop,
        _THINKING_SOURCE,
    ),
)
"""Applied in order: ``required`` becomes ``auto`` first, so only named choices are left for the
thinking-mode rules."""
