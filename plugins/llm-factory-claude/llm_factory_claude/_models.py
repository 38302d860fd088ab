"""What each Claude model family can do, as data: output limit, thinking style, effort levels,
native structured output, and whether it takes ``temperature`` and ``top_p`` together.

Looked up by the upstream model id, which may be an Anthropic id or alias
(``claude-sonnet-4-5-20250929``, ``claude-opus-4-6``), a Bedrock model id
(``anthropic.claude-sonnet-4-5-20250929-v1:0``), a cross-region profile (``us.``/``eu.``/``global.``)
or an inference-profile ARN (its last segment names the model). An id that names no known family
(an application inference profile ARN, a future model) gets conservative defaults.

Sources (checked 2026-12):
- models overview, per-model pages (max output): platform.claude.com/docs/en/about-claude/models/overview
- adaptive thinking (Opus 4.6, Sonnet 4.6 and later): platform.claude.com/docs/en/build-with-claude/adaptive-thinking
- effort (``output_config.effort``): platform.claude.com/docs/en/build-with-claude/effort;
  anthropic-sdk-python ``types/output_config_param.py`` (low, medium, high, xhigh, max)
- structured outputs (``output_config.format``): platform.claude.com/docs/en/build-with-claude/structured-outputs;
  Bedrock InvokeModel: docs.aws.amazon.com/bedrock/latest/userguide/structured-output.html
  (Haiku 4.5, Sonnet 4.5, Opus 4.5/4.6)
- one sampler (``temperature`` or ``top_p``): platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FAMILIES", "UNKNOWN", "ModelInfo", "default_max_tokens", "model_info"]

Thinking = Literal["adaptive", "budget"] | None

DEFAULT_OUTPUT_CAP = 32_000
"""The default ``max_tokens`` never exceeds this (Claude Code's own default output cap): a larger
one only reserves more of a Bedrock quota (tokens per minute count ``max_tokens`` up front)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    family: str
    globs: tuple[str, ...]
    max_output: int
    """The model's maximum output tokens (thinking included)."""
    thinking: Thinking = None
    """``adaptive``: ``thinking: {type: adaptive}`` + ``output_config.effort``; ``budget``:
    ``thinking: {type: enabled, budget_tokens}``; None: no extended thinking."""
    efforts: tuple[str, ...] = ()
    """The ``output_config.effort`` values the model takes (adaptive models)."""
    native_json: bool = False
    """``output_config.format`` (json_schema) on both Anthropic and Bedrock InvokeModel."""
    one_sampler: bool = False
    """400 "temperature and top_p cannot both be specified for this model"."""
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", tuple(re.compile(fnmatch.translate(g)) for g in self.globs))

    def matches(self, model: str) -> bool:
        lowered = model.lower()
        tail = lowered.rsplit("/", 1)[-1]  # an inference-profile ARN ends with the profile id
        return any(p.match(lowered) or p.match(tail) for p in self._patterns)


_ADAPTIVE_EFFORTS = ("low", "medium", "high", "max")
_ALL_EFFORTS = ("low", "medium", "high", "xhigh", "max")

FAMILIES: tuple[ModelInfo, ...] = (
    # Newest first; a later Opus/Sonnet 4.x keeps 4.6's controls until this table says otherwise.
    ModelInfo("opus-4.7+", ("*claude-opus-4-7*", "*claude-opus-4-8*"), 128_000, "adaptive", _ALL_EFFORTS, True, True),
    ModelInfo("opus-4.6", ("*claude-opus-4-6*",), 128_000, "adaptive", _ADAPTIVE_EFFORTS, True, True),
    ModelInfo("sonnet-4.6", ("*claude-sonnet-4-6*",), 64_000, "adaptive", ("low", "medium", "high"), True, True),
    ModelInfo("opus-4.5", ("*claude-opus-4-5*",), 64_000, "budget", (), True, True),
    ModelInfo("sonnet-4.5", ("*claude-sonnet-4-5*",), 64_000, "budget", (), True, True),
    ModelInfo("haiku-4.5", ("*claude-haiku-4-5*",), 64_000, "budget", (), True, True),
    # Structured outputs reached Opus 4.1 on Anthropic's API only: the forced tool works on both hosts.
    ModelInfo("opus-4.1", ("*claude-opus-4-1*",), 32_000, "budget", (), False, True),
    ModelInfo("opus-4", ("*claude-opus-4-2025*", "*claude-opus-4-0*", "*claude-opus-4"), 32_000, "budget"),
    ModelInfo("sonnet-4", ("*claude-sonnet-4-2025*", "*claude-sonnet-4-0*", "*claude-sonnet-4"), 64_000, "budget"),
    ModelInfo("sonnet-3.7", ("*claude-3-7-sonnet*",), 64_000, "budget"),
    ModelInfo("3.5", ("*claude-3-5-sonnet*", "*claude-3-5-haiku*"), 8_192),
    ModelInfo("3", ("*claude-3-haiku*", "*claude-3-opus*", "*claude-3-sonnet*"), 4_096),
)

UNKNOWN = ModelInfo("unknown", (), 8_192, "budget")
"""An id that names no family (an application inference profile): what every current Claude takes."""


def model_info(model: str) -> ModelInfo:
    for info in FAMILIES:
        if info.matches(model):
            return info
    return UNKNOWN


def default_max_tokens(info: ModelInfo) -> int:
    """``max_tokens`` when neither the call nor the deployment sets one (Claude requires it)."""
    return min(info.max_output, DEFAULT_OUTPUT_CAP)
