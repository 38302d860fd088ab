"""Health of deployments: cooldowns that grow and expire, disabled keys, counters, latency.

All state sits behind the small ``HealthStore`` interface; ``InMemoryHealth`` is the default. A
shared store (Redis) can implement the same methods so several server processes agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from ._errors import ProviderError, RateLimitError

__all__ = ["CooldownPolicy", "DeploymentStats", "HealthStore", "InMemoryHealth"]


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """How long a deployment rests after a failure (seconds)."""

    base: float = 1.0
    """First cooldown after a transient failure; doubles with each consecutive failure."""
    max: float = 30.0
    """Cap for transient failures, so a recovered deployment is back within this long."""
    disable_for: float = 3600.0
    """How long a bad key (401/402/403) stays disabled."""
    max_retry_after: float = 3600.0
    """Longest provider Retry-After honoured."""

    def cooldown_for(self, error: ProviderError, consecutive: int) -> float:
        if error.disables_deployment:
            return self.disable_for
        backoff: float = min(self.max, self.base * 2.0 ** max(0, consecutive - 1))
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            hinted: float = max(error.retry_after, min(backoff, self.base))
            return min(self.max_retry_after, hinted)
        return backoff


@dataclass(slots=True)
class DeploymentStats:
    in_flight: int = 0
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    """Monotonic time the current cooldown ends (0: none)."""
    disabled_reason: str | None = None
    last_error: str | None = None
    latency_ewma: float | None = None
    """Moving average of seconds to answer (to first content for streams)."""


class HealthStore(Protocol):
    def stats(self, name: str) -> DeploymentStats: ...
    def available(self, name: str, now: float) -> bool: ...
    def begin(self, name: str) -> None: ...
    def end(self, name: str) -> None: ...
    def success(self, name: str, latency: float) -> bool:
        """Record a success; True when it ended a cooldown (the deployment recovered)."""
        ...

    def failure(self, name: str, error: ProviderError, now: float) -> float:
        """Record a failure; return the cooldown it caused (0 for none)."""
        ...


class InMemoryHealth:
    """Health kept in this process. Methods are plain attribute updates: no locks needed under
    the GIL, and cheap enough for the hot path."""

    EWMA_ALPHA = 0.3

    def __init__(self, policy: CooldownPolicy | None = None) -> None:
        self.policy = policy or CooldownPolicy()
        self._stats: dict[str, DeploymentStats] = {}

    def stats(self, name: str) -> DeploymentStats:
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = DeploymentStats()
        return stats

    def available(self, name: str, now: float) -> bool:
        return self.stats(name).cooldown_until <= now

    def begin(self, name: str) -> None:
        self.stats(name).in_flight += 1

    def end(self, name: str) -> None:
        self.stats(name).in_flight -= 1

    def success(self, name: str, latency: float) -> bool:
        stats = self.stats(name)
        stats.successes += 1
        recovered = stats.consecutive_failures > 0 or stats.disabled_reason is not None
        stats.consecutive_failures = 0
        stats.disabled_reason = None
        stats.cooldown_until = 0.0
        ewma = stats.latency_ewma
        stats.latency_ewma = latency if ewma is None else ewma + self.EWMA_ALPHA * (latency - ewma)
        return recovered

    def failure(self, name: str, error: ProviderError, now: float) -> float:
        stats = self.stats(name)
        stats.failures += 1
        stats.last_error = f"{type(error).__name__}: {error.message}"[:300]
        if not error.retryable:
            return 0.0  # the request was the problem, not the deployment
        stats.consecutive_failures += 1
        cooldown = self.policy.cooldown_for(error, stats.consecutive_failures)
        stats.cooldown_until = max(stats.cooldown_until, now + cooldown)
        if error.disables_deployment:
            stats.disabled_reason = stats.last_error
        return cooldown


def wall_clock(monotonic_at: float) -> float:
    """Convert a monotonic instant to wall-clock seconds (for status pages and errors)."""
    return time.time() + (monotonic_at - time.monotonic())
