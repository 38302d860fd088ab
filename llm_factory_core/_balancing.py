"""Load-balancing strategies: given a model group's available deployments, choose the order of
attempts. The pick comes first; the rest of the group follows as failover candidates."""

from __future__ import annotations

from collections.abc import Sequence

from ._deployment import Deployment
from ._health import HealthStore

__all__ = ["Strategy"]


class Strategy:
    """Base class of strategies. One instance serves one model group for the factory's lifetime,
    so it may keep state (a round-robin counter). Override ``pick``; ``order`` is rarely needed.
    """

    name: str = ""

    def __init__(self, deployments: Sequence[Deployment], health: HealthStore) -> None:
        self.deployments = deployments
        self.health = health

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        """Choose one of ``candidates`` (non-empty, all available, same best priority)."""
        raise NotImplementedError

    def order(self, candidates: Sequence[Deployment]) -> list[Deployment]:
        """Attempt order: the pick among the best priority, then the others by priority."""
        if len(candidates) <= 1:
            return list(candidates)
        best = min(d.priority for d in candidates)
        tier = [d for d in candidates if d.priority == best]
        chosen = self.pick(tier)
        return [chosen] + [d for d in candidates if d is not chosen]
