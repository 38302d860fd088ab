"""What current Gemini models reject, as data for the router (``Provider.model_rules``).

Reasoning-effort translation is not here: it is the codec's job (``_thinking``).
"""

from __future__ import annotations

from llm_factory_core import ChatRequest
from llm_factory_core.providers import ParamRule

__all__ = ["MODEL_RULES", "PENALTY_MODELS"]

PENALTY_MODELS = ("gemini-2.5*", "gemini-3*", "gemini-[4-9]*", "gemini-*-latest")
"""Gemini 2.5, 3.x and later, and the ``-latest`` aliases (which point at 3.x)."""
_PENALTY_SOURCE = (
    "google-gemini/cookbook#1290 (penalties 'aren't supported on any currently recommended Gemini model'); "
    "400 INVALID_ARGUMENT 'Penalty is not enabled for models/gemini-2.5-flash' (PublicAffairs/openai-gemini#63)"
)


def _penalty_rule(param: str) -> ParamRule:
    def check(request: ChatRequest) -> str | None:
        if getattr(request, param) is None:
            return None
        return f"{param} is not supported by this Gemini model (400 'Penalty is not enabled for this model')"

    return ParamRule(
        name=f"gemini.no_{param}",
        param=param,
        models=PENALTY_MODELS,
        check=check,
        adapt=lambda request: {param: None},
        source=_PENALTY_SOURCE,
    )


MODEL_RULES: tuple[ParamRule, ...] = (_penalty_rule("presence_penalty"), _penalty_rule("frequency_penalty"))
