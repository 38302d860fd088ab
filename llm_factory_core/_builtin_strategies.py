"""The built-in strategies, registered through the same hook third-party plugins use."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from ._balancing import Strategy
from ._deployment import Deployment
from ._health import HealthStore
from .hookspecs import hookimpl

__all__ = [
    "FirstAvailable",
    "LatencyBased",
    "LeastBusy",
    "RandomChoice",
    "RoundRobin",
    "Weighted",
]


class RoundRobin(Strategy):
    """Each request takes the next deployment in turn (over those currently available)."""

    name = "round_robin"

    def __init__(self, deployments: Sequence[Deployment], health: HealthStore) -> None:
        super().__init__(deployments, health)
        self._counter = itertools.count()

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        return candidates[next(self._counter) % len(candidates)]


class RandomChoice(Strategy):
    name = "random"

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        return random.choice(candidates)


class FirstAvailable(Strategy):
    """The first available deployment in configuration order: a primary with standbys."""

    name = "first_available"

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        return min(candidates, key=lambda d: d.index)


class Weighted(Strategy):
    """Random, in proportion to each deployment's ``weight``."""

    name = "weighted"

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        return random.choices(candidates, weights=[max(d.weight, 0.0) or 1e-9 for d in candidates])[0]


class LeastBusy(Strategy):
    """The deployment with the fewest requests in flight (ties in turn)."""

    name = "least_busy"

    def __init__(self, deployments: Sequence[Deployment], health: HealthStore) -> None:
        super().__init__(deployments, health)
        self._tie = itertools.count()

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        stats = self.health.stats
        fewest = min(stats(d.name).in_flight for d in candidates)
        tied = [d for d in candidates if stats(d.name).in_flight == fewest]
        return tied[next(self._tie) % len(tied)]


class LatencyBased(Strategy):
    """The lowest moving-average latency; deployments without a measurement are tried first."""

    name = "latency"

    def pick(self, candidates: Sequence[Deployment]) -> Deployment:
        stats = self.health.stats
        unmeasured = [d for d in candidates if stats(d.name).latency_ewma is None]
        if unmeasured:
            return unmeasured[0]
        return min(candidates, key=lambda d: stats(d.name).latency_ewma or 0.0)


@hookimpl
def llm_factory_register_strategies(register: Callable[[str, type[Strategy]], None]) -> None:
    for cls in (RoundRobin, RandomChoice, FirstAvailable, Weighted, LeastBusy, LatencyBased):
        register(cls.name, cls)
