"""Claude's extended thinking in the OpenAI shape, and ``reasoning_effort`` as Claude's control.

Replies: each ``thinking`` block (with its ``signature``) and ``redacted_thinking`` block is
returned in ``message.thinking_blocks`` (LiteLLM's field and shape) and its text in
``reasoning_content``; the blocks are also remembered in the process's reasoning memory under each
tool-call id of that turn, for clients that drop unknown fields. History: the blocks of an
assistant turn are rebuilt, unchanged and first, from ``thinking_blocks`` or from memory, because
with thinking on Anthropic rejects a tool-use turn that does not start with them ("Expected
`thinking` or `redacted_thinking`, but found `tool_use`").
Source: platform.claude.com/docs/en/build-with-claude/extended-thinking#preserving-thinking-blocks
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from llm_factory_core.dialects.anthropic import thinking_block
from llm_factory_core.providers import reasoning_memory

from ._models import ModelInfo

__all__ = [
    "MEMORY_KIND",
    "THINKING_TYPES",
    "client_blocks",
    "effort_level",
    "fit_max_tokens",
    "recall_blocks",
    "remember_blocks",
    "thinking_for_effort",
]

log = logging.getLogger("llm_factory_claude")

MEMORY_KIND = "claude.thinking"
THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})
MIN_BUDGET = 1024
"""``budget_tokens`` must be at least 1,024 (anthropic-sdk-python thinking_config_enabled_param.py)."""

_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16_384, "xhigh": 32_000, "max": 48_000}
# OpenAI's levels onto Claude's effort levels; a level the model lacks falls to the nearest it has.
_EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")


def effort_level(level: str, info: ModelInfo) -> str | None:
    """OpenAI's ``reasoning_effort`` as an ``output_config.effort`` the model takes."""
    wanted = "low" if level == "minimal" else level
    if wanted not in _EFFORT_ORDER or not info.efforts:
        return None
    if wanted in info.efforts:
        return wanted
    rank = _EFFORT_ORDER.index(wanted)
    below = [e for e in info.efforts if _EFFORT_ORDER.index(e) < rank]
    above = [e for e in info.efforts if _EFFORT_ORDER.index(e) > rank]
    # "More than high" is better served by max than by high: the next level up first.
    return above[0] if above else (below[-1] if below else None)


def thinking_for_effort(level: str, info: ModelInfo) -> tuple[dict[str, Any] | None, str | None]:
    """``(thinking, effort)`` for ``reasoning_effort``: adaptive thinking with an effort where the
    model has it, else a budget; ``none`` (or a model without thinking) gives neither."""
    if level != "none" and level not in _BUDGETS:
        raise ValueError(f"reasoning_effort must be one of none, minimal, low, medium, high, xhigh, max; not {level!r}")
    if level == "none" or info.thinking is None:
        return None, None
    if info.thinking == "adaptive":
        return {"type": "adaptive"}, effort_level(level, info)
    # Leave room for an answer below the model's output limit.
    budget = max(MIN_BUDGET, min(_BUDGETS[level], info.max_output - 4096))
    return {"type": "enabled", "budget_tokens": budget}, None


def fit_max_tokens(body: dict[str, Any], info: ModelInfo) -> None:
    """``budget_tokens`` must stay below ``max_tokens``: raise ``max_tokens`` by the budget (the
    answer keeps the room it was given) up to the model's limit, else shrink the budget."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return
    max_tokens = int(body["max_tokens"])
    if budget < max_tokens:
        return
    limit = max(info.max_output, max_tokens)
    raised = min(limit, budget + max_tokens)
    if raised > budget:
        body["max_tokens"] = raised
        return
    body["max_tokens"] = limit
    body["thinking"] = {**thinking, "budget_tokens": max(MIN_BUDGET, limit - max(MIN_BUDGET, limit // 4))}


# A client's thinking block, reduced to the fields Claude defines (exactly as Claude sent them);
# unsigned thinking (another provider's reasoning) cannot go back to Claude. The Messages
# dialect's own helper: the gateway's /v1/messages door reads blocks the same way.
_clean = thinking_block


def client_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The signed blocks an assistant message carries in ``thinking_blocks``, or None."""
    raw = message.get("thinking_blocks")
    if not isinstance(raw, list):
        return None
    blocks = [b for b in (_clean(x) for x in raw) if b is not None]
    return blocks or None


def remember_blocks(blocks: list[dict[str, Any]], tool_call_ids: Iterable[str]) -> None:
    if not blocks:
        return
    frozen = [dict(b) for b in blocks]
    for call_id in tool_call_ids:
        reasoning_memory.remember(MEMORY_KIND, call_id, frozen)


def recall_blocks(tool_calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    for call in tool_calls:
        call_id = call.get("id")
        found = reasoning_memory.recall(MEMORY_KIND, call_id if isinstance(call_id, str) else None)
        if found:
            return [dict(b) for b in found]
    return None
