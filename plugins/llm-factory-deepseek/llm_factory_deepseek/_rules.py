"""What DeepSeek's models do not take, as data (``DeepSeekProvider.model_rules``), applied by the
router under each deployment's ``unsupported_params`` policy (``adapt``, the default, or ``fail``).

- ``max_completion_tokens``: DeepSeek's Create Chat Completion reference documents only
  ``max_tokens`` (the cap of the whole output, reasoning included;
  api-docs.deepseek.com/api/create-chat-completion). Whether the newer OpenAI field is honoured
  is not documented (reference finding 17), so it is moved to ``max_tokens``; when a caller sends
  both, ``max_completion_tokens`` wins, as in OpenAI's API where it supersedes ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_factory_core import ChatRequest
from llm_factory_core.providers import ParamRule

__all__ = ["DEEPSEEK_RULES"]

_MAX_TOKENS_SOURCE = "https://api-docs.deepseek.com/api/create-chat-completion (max_tokens; no max_completion_tokens)"


def _max_completion_tokens(request: ChatRequest) -> str | None:
    if request.max_completion_tokens is None:
        return None
    return "max_completion_tokens is not a DeepSeek parameter (DeepSeek takes max_tokens)"


def _to_max_tokens(request: ChatRequest) -> Mapping[str, Any]:
    return {"max_completion_tokens": None, "max_tokens": request.max_completion_tokens}


DEEPSEEK_RULES: tuple[ParamRule, ...] = (
    ParamRule(
        "deepseek.max_tokens",
        "max_completion_tokens",
        (),
        _max_completion_tokens,
        _to_max_tokens,
        _MAX_TOKENS_SOURCE,
    ),
)
