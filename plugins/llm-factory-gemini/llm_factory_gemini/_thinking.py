"""``reasoning_effort`` and the thinking settings -> Gemini ``thinkingConfig`` (a pure function).

Levels are sent as the ThinkingLevel enum names google-genai sends (``LOW``; Google's errors
name them so too: "Thinking level MINIMAL is not supported for this model"). One field only,
ever: Gemini answers 400 when ``thinkingLevel`` and ``thinkingBudget`` come together. A request's
``reasoning_effort`` wins over the deployment's configured level or budget; it becomes a level
on Gemini 3 and later, a budget on 2.5 and older (``_models`` has the ranges).
OpenAI's values are none, minimal, low, medium, high, xhigh (and ``max``, which some providers
take); a value a model cannot take is adapted to the nearest one it can.
"""

from __future__ import annotations

from typing import Any

from llm_factory_core import ChatRequest

from ._errors import EncodeError
from ._models import LEVELS, ModelFamily, family_of
from ._settings import GeminiSettings

__all__ = ["EFFORTS", "budget_for", "level_for", "thinking_config"]

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

_LEVEL_OF_EFFORT = {
    "none": "minimal",  # Gemini 3 cannot turn thinking off; minimal is "no thinking for most queries"
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
_BUDGET_OF_EFFORT: dict[str, int | None] = {
    # Google's own OpenAI-compatible endpoint: minimal/low 1024, medium 8192, high 24576.
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": None,  # None: the model's largest budget
    "max": None,
}


def level_for(effort: str, family: ModelFamily) -> str:
    """The level for ``effort``, or the nearest one the model takes (more thinking first: a
    level the model lacks is rounded up, and only the top is rounded down)."""
    wanted = _LEVEL_OF_EFFORT[effort]
    if wanted in family.levels:
        return wanted
    rank = LEVELS.index(wanted)
    higher = [level for level in family.levels if LEVELS.index(level) > rank]
    return higher[0] if higher else family.levels[-1]


def budget_for(effort: str, family: ModelFamily) -> int:
    budget = _BUDGET_OF_EFFORT[effort]
    if budget == 0:
        return 0 if family.can_disable else family.budget_min
    if budget is None:
        return family.budget_max
    return max(family.budget_min, min(budget, family.budget_max))


def thinking_config(request: ChatRequest, settings: GeminiSettings) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if settings.include_thoughts is not None:
        config["includeThoughts"] = settings.include_thoughts
    if request.reasoning_effort is not None:
        effort = request.reasoning_effort.strip().lower()
        if effort not in EFFORTS:
            raise EncodeError(f"reasoning_effort {request.reasoning_effort[:20]!r} is not one of {', '.join(EFFORTS)}")
        family = family_of(settings.model)
        if family.uses_levels:
            config["thinkingLevel"] = level_for(effort, family).upper()
        else:
            config["thinkingBudget"] = budget_for(effort, family)
    elif settings.thinking_level is not None:
        config["thinkingLevel"] = settings.thinking_level.upper()
    elif settings.thinking_budget is not None:
        config["thinkingBudget"] = settings.thinking_budget
    return config
