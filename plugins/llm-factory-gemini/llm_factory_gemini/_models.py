"""What each Gemini model family takes for thinking and tool results, as data.

Gemini 3 and later are steered with ``thinkingLevel`` (``thinkingBudget`` is only accepted there
for backward compatibility); Gemini 2.5 with ``thinkingBudget``, whose range depends on the model
and which Pro cannot set to 0. Sources (checked 2026-12):

- https://ai.google.dev/gemini-api/docs/thinking ("Thinking levels", "Set budget"): 2.5 Pro
  128..32768 and cannot turn thinking off; 2.5 Flash 0..24576; 2.5 Flash-Lite 512..24576 or 0;
  "If you use thinking_level with a model earlier than Gemini 3, the model returns an error".
- Level support per model (the thinking page's table, mirrored in Vercel's AI Gateway docs):
  Gemini 3 Pro low/high; Gemini 3.1 Pro low/medium/high (no minimal); Gemini 3 Flash, 3.x Flash
  and Flash-Lite minimal/low/medium/high (3.7 Flash: no minimal). Sent upper-case, as google-genai
  sends its ThinkingLevel enum.
- Multimodal function responses (``functionResponse.parts``) are a Gemini 3 feature
  (https://ai.google.dev/gemini-api/docs/function-calling#multimodal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LEVELS", "ModelFamily", "family_of"]

LEVELS = ("minimal", "low", "medium", "high")
"""Gemini's thinking levels, least to most thinking."""


@dataclass(frozen=True, slots=True)
class ModelFamily:
    name: str
    levels: tuple[str, ...] = ()
    """Thinking levels the model takes; empty for budget-steered models."""
    budget_min: int = 0
    """Smallest positive budget; 0 when thinking cannot be set to a budget at all."""
    budget_max: int = 24576
    can_disable: bool = True
    """Whether ``thinkingBudget: 0`` turns thinking off (rejected by 2.5 Pro)."""
    multimodal_tool_results: bool = False

    @property
    def uses_levels(self) -> bool:
        return bool(self.levels)


# Pro models cannot turn thinking off (docker/docker-agent#2051: "Budget 0 is invalid" on 3.1 Pro).
_GEMINI_3_PRO = ModelFamily("gemini-3-pro", levels=("low", "high"), can_disable=False, multimodal_tool_results=True)
_GEMINI_3X_PRO = ModelFamily(
    "gemini-3.x-pro", levels=("low", "medium", "high"), can_disable=False, multimodal_tool_results=True
)
_GEMINI_3_FLASH = ModelFamily("gemini-3-flash", levels=LEVELS, multimodal_tool_results=True)
_GEMINI_37_FLASH = ModelFamily("gemini-3.7-flash", levels=("low", "medium", "high"), multimodal_tool_results=True)
"""The thinking page's table footnotes MINIMAL as not supported by gemini-3.7-flash."""
_GEMINI_25_PRO = ModelFamily("gemini-2.5-pro", budget_min=128, budget_max=32768, can_disable=False)
_GEMINI_25_FLASH = ModelFamily("gemini-2.5-flash", budget_min=1, budget_max=24576)
_GEMINI_25_LITE = ModelFamily("gemini-2.5-flash-lite", budget_min=512, budget_max=24576)
_OTHER = ModelFamily("other", budget_min=1, budget_max=24576)
"""Older or unknown models: budgets as Google's OpenAI-compatible endpoint maps them."""

_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?-(.*)$")


def family_of(model: str) -> ModelFamily:
    """The family of an upstream model id (``gemini-2.5-pro``, ``models/gemini-3-flash-preview``,
    a Vertex ``publishers/google/models/...`` path, ``gemini-flash-latest``)."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.endswith("-latest") and name.startswith("gemini-"):
        # The -latest aliases point at the current generation (Gemini 3.x today).
        return _GEMINI_3X_PRO if "-pro" in name else _GEMINI_3_FLASH
    match = _VERSION.match(name)
    if not match:
        return _OTHER
    major, minor, rest = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if major >= 3:
        if rest.startswith("pro"):
            return _GEMINI_3_PRO if (major, minor) == (3, 0) else _GEMINI_3X_PRO
        if (major, minor) == (3, 7) and rest.startswith("flash") and not rest.startswith("flash-lite"):
            return _GEMINI_37_FLASH
        return _GEMINI_3_FLASH
    if (major, minor) == (2, 5):
        if rest.startswith("pro"):
            return _GEMINI_25_PRO
        if rest.startswith("flash-lite"):
            return _GEMINI_25_LITE
        return _GEMINI_25_FLASH
    return _OTHER
