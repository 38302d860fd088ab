"""The order of attempts for one request (``_Plan``) and what a committed stream has sent."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

import anyio

from ._deployment import Deployment
from ._errors import (
    AllDeploymentsFailedError,
    Attempt,
    ContextLengthError,
    NoDeploymentAvailableError,
    ProviderError,
    UpstreamTimeoutError,
)
from ._health import wall_clock
from ._types import ChatCompletionChunk

if TYPE_CHECKING:
    from ._router import Router

__all__ = ["DeadlineExceeded", "Plan", "Progress"]


class DeadlineExceeded(Exception):
    pass


class Progress:
    """What a committed stream has sent, for continuing it elsewhere (only when enabled)."""

    __slots__ = ("continuable", "created", "id", "parts")

    def __init__(self) -> None:
        self.id = ""
        self.created = 0
        self.parts: list[str] = []
        self.continuable = True

    def observe(self, chunk: ChatCompletionChunk) -> None:
        if not self.id:
            self.id, self.created = chunk.id, chunk.created
        for choice in chunk.choices:
            delta = choice.delta
            if choice.index != 0 or delta.tool_calls or choice.finish_reason is not None:
                self.continuable = False  # tool calls and several choices cannot be prefilled
            elif delta.content:
                self.parts.append(delta.content)

    def text(self) -> str:
        return "".join(self.parts)

    def can_continue(self) -> bool:
        return self.continuable and bool(self.parts)


class Plan:
    """Yields deployments to try, in order, for one request; told each outcome."""

    def __init__(self, router: Router, model: str, strategy: str, deadline: float) -> None:
        self.router = router
        self.models = [model, *router.settings.fallbacks.get(model, ())]
        self.strategy_name = strategy
        self.deadline = deadline
        self.attempts: list[Attempt] = []
        self.excluded: set[str] = set()
        self._skip_model = False
        self.alternatives = sum(len(router.groups[m]) for m in self.models) > 1
        """Another deployment could answer: a learnt first-token limit may fail over to it."""

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def record(self, deployment: Deployment, error: ProviderError) -> None:
        self.attempts.append(Attempt(deployment.name, deployment.model_name, error, time.time()))
        if isinstance(error, UpstreamTimeoutError) and error.silent:
            self.excluded.add(deployment.name)  # a silent upstream stays silent
        if isinstance(error, ContextLengthError):
            self._skip_model = True  # a bigger fallback may fit; this group will not

    async def _wait(self, seconds: float) -> bool:
        """Sleep if it fits in the deadline; False when it does not (try the next model)."""
        if seconds >= self.remaining():
            return False
        if seconds > 0:
            await anyio.sleep(seconds)
        return True

    def _candidates(self, group: Sequence[Deployment], now: float) -> list[Deployment]:
        health = self.router.health
        out = []
        for d in group:
            if d.name in self.excluded or not health.available(d.name, now):
                continue
            if d.max_concurrency is not None and health.stats(d.name).in_flight >= d.max_concurrency:
                continue
            out.append(d)
        return out

    async def deployments(self) -> AsyncGenerator[Deployment, None]:
        router = self.router
        settings = router.settings
        for model in self.models:
            group = router.groups[model]
            strategy = router.strategy(model, self.strategy_name)
            self._skip_model = False
            for round_ in range(settings.num_retries + 1):
                if round_:
                    if self._shortest_wait(group) is None:
                        break  # every deployment is disabled or excluded: waiting helps nobody
                    if not self._candidates(group, time.monotonic()) and self._outage(group, model):
                        break  # an outage: a healthy fallback now beats backing off on a cooling group
                    backoff = min(settings.retry_backoff_max, settings.retry_backoff * 2 ** (round_ - 1))
                    if not await self._wait(backoff * (0.5 + random.random() / 2)):
                        break
                candidates = self._candidates(group, time.monotonic())
                waited = 0.0
                while not candidates:
                    # A short cooldown (or a full max_concurrency) is waited out; a long one is
                    # not: the fallbacks may answer now. Timers can wake a hair early, so loop.
                    wait = self._shortest_wait(group)
                    if wait is None or self._outage(group, model):
                        break  # an outage: prefer a healthy fallback over waiting it out
                    wait = max(wait, 0.005)
                    waited += wait
                    if waited > settings.max_cooldown_wait or not await self._wait(wait):
                        break
                    candidates = self._candidates(group, time.monotonic())
                if not candidates:
                    break
                for deployment in strategy.order(candidates):
                    yield deployment
                    if self._skip_model:
                        break
                if self._skip_model:
                    break

    def _outage(self, group: Sequence[Deployment], model: str) -> bool:
        """Whether to leave a cooling group for a healthy fallback rather than wait: a blip (the
        first failure in a row, a short Retry-After) is waited out on the same model; once every
        cooling deployment of the group failed again in a row, it is an outage, and a fallback
        that can answer now wins."""
        health = self.router.health
        now = time.monotonic()
        cooling = [
            health.stats(d.name).consecutive_failures
            for d in group
            if d.name not in self.excluded and health.stats(d.name).cooldown_until > now
        ]
        return bool(cooling) and min(cooling) >= 2 and self._fallback_ready(model)

    def _fallback_ready(self, model: str) -> bool:
        """Whether a model after ``model`` in this plan has a deployment to try right now."""
        later = self.models[self.models.index(model) + 1 :]
        now = time.monotonic()
        return any(self._candidates(self.router.groups[m], now) for m in later)

    def _shortest_wait(self, group: Sequence[Deployment]) -> float | None:
        now = time.monotonic()
        waits = [
            self.router.health.stats(d.name).cooldown_until - now
            for d in group
            if d.name not in self.excluded and self.router.health.stats(d.name).disabled_reason is None
        ]
        return max(0.0, min(waits)) if waits else None

    def failure(self, model: str, deadline_hit: bool = False) -> AllDeploymentsFailedError:
        if deadline_hit:
            return AllDeploymentsFailedError(
                model, self.attempts, f"Model {model!r} did not answer within the call's deadline."
            )
        if not self.attempts:
            return NoDeploymentAvailableError(model, [], self._available_at(), self._unavailable())
        return AllDeploymentsFailedError(model, self.attempts)

    def final_error(self, model: str) -> Exception:
        """What to raise when the plan ran out: a context-length error stays itself (no bigger
        fallback fitted either), anything else becomes the list of attempts."""
        last = self.attempts[-1].error if self.attempts else None
        if isinstance(last, ContextLengthError):
            return last
        return self.failure(model)

    def _unavailable(self) -> list[tuple[str, str, float | None]]:
        """Why each deployment of the plan's models is out, and until when (for the error)."""
        health = self.router.health
        now = time.monotonic()
        out: list[tuple[str, str, float | None]] = []
        for m in self.models:
            for d in self.router.groups[m]:
                stats = health.stats(d.name)
                if stats.cooldown_until <= now and stats.disabled_reason is None:
                    continue
                state = "disabled" if stats.disabled_reason is not None else "cooling down"
                cause = stats.disabled_reason or stats.last_error or "no error recorded"
                until = wall_clock(stats.cooldown_until) if stats.cooldown_until > now else None
                out.append((d.name, f"{state}: {cause}", until))
        return out

    def _available_at(self) -> float | None:
        health = self.router.health
        times = [
            health.stats(d.name).cooldown_until
            for m in self.models
            for d in self.router.groups[m]
            if health.stats(d.name).disabled_reason is None
        ]
        return wall_clock(min(times)) if times else None
