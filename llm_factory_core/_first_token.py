"""A first-token limit that fits each deployment: learnt from its recent times to first content.

The fixed ``first_token_timeout`` (120 s by default) has to allow for the slowest model a
deployment may serve, say a reasoning model that thinks for a minute; it is far too patient with a
fast model whose upstream has got stuck. So each deployment keeps its last ``window`` times to
first content, and once it has ``min_samples`` of them a stream attempt that goes ``multiple`` times
past their 90th percentile (never below ``floor``, never above ``ceiling`` or the fixed limit) is
abandoned for another deployment, when the plan has one.

Why it cannot starve a slow model: a model that thinks for a minute learns a p90 of a minute, so its
limit is three minutes clamped to the fixed limit: what applied before. And an attempt abandoned at
the learnt limit counts as a sample *at* that limit (its real time is at least that): once more than
one attempt in ten is cut, the p90 reaches the limit and the next limit is ``multiple`` times
higher, so a deployment that got slower for good relearns within a few requests, not never.

The hot path reads one dict entry per attempt; the percentile is recomputed on each sample (a sort
of at most ``window`` floats, after the first content has arrived).
"""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AdaptiveFirstToken", "FirstTokenLimits"]


class AdaptiveFirstToken(BaseModel):
    """``router.adaptive_first_token``: how each deployment's first-token limit is learnt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    multiple: float = Field(default=3.0, ge=1.0)
    """The limit is this many times the recent 90th percentile of times to first content."""
    floor: float = Field(default=5.0, gt=0)
    """Never fail over sooner than this many seconds (jitter of fast models stays harmless)."""
    ceiling: float | None = Field(default=None, gt=0)
    """Never wait for more than this; unset: the deployment's ``first_token_timeout``."""
    window: int = Field(default=50, ge=5, le=10_000)
    """How many recent times to first content a deployment keeps."""
    min_samples: int = Field(default=10, ge=1)
    """No learnt limit before a deployment has this many samples (the fixed limit applies)."""

    @model_validator(mode="after")
    def _consistent(self) -> AdaptiveFirstToken:
        if self.min_samples > self.window:
            raise ValueError(f"min_samples ({self.min_samples}) cannot exceed window ({self.window})")
        if self.ceiling is not None and self.ceiling < self.floor:
            raise ValueError(f"ceiling ({self.ceiling}) cannot be below floor ({self.floor})")
        return self


class FirstTokenLimits:
    """Per deployment (by name): recent times to first content and the limit they give."""

    __slots__ = ("_samples", "limits", "settings")

    def __init__(self, settings: AdaptiveFirstToken) -> None:
        self.settings = settings
        self._samples: dict[str, deque[float]] = {}
        self.limits: dict[str, float] = {}
        """The learnt limit of each deployment that has one (read on the hot path)."""

    def observe(self, name: str, seconds: float, fixed: float) -> None:
        """Record a time to first content (or, for an attempt cut at its learnt limit, that
        limit); ``fixed`` is the deployment's own first-token limit, the highest ceiling."""
        s = self.settings
        if not s.enabled:
            return
        samples = self._samples.get(name)
        if samples is None:
            samples = self._samples[name] = deque(maxlen=s.window)
        samples.append(seconds)
        if len(samples) < s.min_samples:
            return
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        ceiling = fixed if s.ceiling is None else min(s.ceiling, fixed)
        self.limits[name] = min(ceiling, max(s.floor, s.multiple * p90))

    def forget(self, name: str) -> None:
        """Drop what was learnt about a deployment (removed or reconfigured)."""
        self._samples.pop(name, None)
        self.limits.pop(name, None)
