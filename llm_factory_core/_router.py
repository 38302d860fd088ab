"""Routing, failover and the streaming contract.

Order of attempts for one call: the strategy's pick among a model's available deployments, then the
group's other available deployments; then up to ``num_retries`` more rounds with backoff, where a
short cooldown is waited out inside the deadline; then the model's fallbacks. One deadline spans it
all. A stream commits at its first content chunk: before it any failure fails over, after it a
failure ends the stream with ``StreamInterruptedError``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import anyio

from ._balancing import Strategy
from ._config import RouterSettings
from ._deployment import Deployment
from ._errors import (
    AllDeploymentsFailedError,
    Attempt,
    ConfigurationError,
    ContextLengthError,
    ModelNotFoundError,
    NoDeploymentAvailableError,
    ProviderError,
    StreamInterruptedError,
    UnknownStrategyError,
    UpstreamTimeoutError,
)
from ._health import HealthStore, wall_clock
from ._plugins import PluginRegistry
from ._provider import Provider
from ._request import ChatRequest
from ._types import ChatCompletion, ChatCompletionChunk

__all__ = ["Router", "StreamInfo"]

log = logging.getLogger("llm_factory_core.router")


class StreamInfo:
    """Filled in by ``Router.stream`` for callers that log or measure (the server)."""

    __slots__ = ("attempts", "deployment", "first_token_at", "model")

    def __init__(self) -> None:
        self.deployment: Deployment | None = None
        self.model: str | None = None
        self.attempts: list[Attempt] = []
        self.first_token_at: float | None = None


class _DeadlineExceeded(Exception):
    pass


class _Plan:
    """Yields deployments to try, in order, for one request; told each outcome."""

    def __init__(self, router: Router, model: str, strategy: str, deadline: float) -> None:
        self.router = router
        self.models = [model, *router.settings.fallbacks.get(model, ())]
        self.strategy_name = strategy
        self.deadline = deadline
        self.attempts: list[Attempt] = []
        self.excluded: set[str] = set()
        self._skip_model = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def record(self, deployment: Deployment, error: ProviderError) -> None:
        self.attempts.append(Attempt(deployment.name, deployment.model_name, error, time.time()))
        if isinstance(error, UpstreamTimeoutError) and error.silent:
            self.excluded.add(deployment.name)  # a silent upstream stays silent
        if isinstance(error, ContextLengthError):
            self._skip_model = True  # a bigger fallback may fit; this group will not

    async def _sleep(self, seconds: float) -> None:
        if seconds >= self.remaining():
            raise _DeadlineExceeded
        if seconds > 0:
            await anyio.sleep(seconds)

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

    async def deployments(self) -> AsyncIterator[Deployment]:
        router = self.router
        settings = router.settings
        for model in self.models:
            group = router.groups[model]
            strategy = router.strategy(model, self.strategy_name)
            self._skip_model = False
            for round_ in range(settings.num_retries + 1):
                if round_:
                    backoff = min(settings.retry_backoff_max, settings.retry_backoff * 2 ** (round_ - 1))
                    await self._sleep(backoff * (0.5 + random.random() / 2))
                candidates = self._candidates(group, time.monotonic())
                if not candidates:
                    wait = self._shortest_wait(group)
                    if wait is None or wait > settings.max_cooldown_wait:
                        break
                    await self._sleep(wait)
                    candidates = self._candidates(group, time.monotonic())
                for deployment in strategy.order(candidates):
                    yield deployment
                    if self._skip_model:
                        break
                if self._skip_model:
                    break

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
            return NoDeploymentAvailableError(model, [], self._available_at())
        return AllDeploymentsFailedError(model, self.attempts)

    def final_error(self, model: str) -> Exception:
        """What to raise when the plan ran out: a context-length error stays itself (no bigger
        fallback fitted either), anything else becomes the list of attempts."""
        last = self.attempts[-1].error if self.attempts else None
        if isinstance(last, ContextLengthError):
            return last
        return self.failure(model)

    def _available_at(self) -> float | None:
        health = self.router.health
        times = [
            health.stats(d.name).cooldown_until
            for m in self.models
            for d in self.router.groups[m]
            if health.stats(d.name).disabled_reason is None
        ]
        return wall_clock(min(times)) if times else None


class Router:
    """Routes requests over deployments; one per factory."""

    def __init__(
        self,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        registry: PluginRegistry,
        health: HealthStore,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.health = health
        self.groups: dict[str, list[Deployment]] = {}
        for d in deployments:
            self.groups.setdefault(d.model_name, []).append(d)
        self.default_model = deployments[0].model_name if deployments else None
        for model, targets in settings.fallbacks.items():
            for name in (model, *targets):
                if name not in self.groups:
                    raise ConfigurationError(
                        f"router.fallbacks: {name!r} is not a configured model_name "
                        f"(configured: {', '.join(self.groups) or 'none'})"
                    )
        self._strategies: dict[tuple[str, str], Strategy] = {}
        self.strategy_class(settings.strategy)  # fail at start-up, not on the first call

    # -- lookup ---------------------------------------------------------------------------------

    def strategy_class(self, name: str) -> type[Strategy]:
        cls = self.registry.strategy(name)
        if cls is None:
            raise UnknownStrategyError(name, self.registry.strategy_names())
        return cls

    def strategy(self, model: str, name: str) -> Strategy:
        key = (model, name)
        strategy = self._strategies.get(key)
        if strategy is None:
            strategy = self._strategies[key] = self.strategy_class(name)(self.groups[model], self.health)
        return strategy

    def resolve(self, request: ChatRequest) -> tuple[str, str]:
        """The model name and strategy for a request, or a clear error."""
        model = request.model or self.default_model
        if model is None or model not in self.groups:
            raise ModelNotFoundError(model or "", list(self.groups))
        strategy = request.load_balance_strategy or self.settings.strategy
        if (model, strategy) not in self._strategies:
            self.strategy_class(strategy)
        return model, strategy

    def _prepare(self, request: ChatRequest, deployment: Deployment) -> ChatRequest:
        if not deployment.defaults:
            return request
        update = {k: v for k, v in deployment.defaults.items() if getattr(request, k, None) is None}
        return request.model_copy(update=update) if update else request

    # -- bookkeeping ----------------------------------------------------------------------------

    def _failed(self, plan: _Plan, deployment: Deployment, error: ProviderError) -> None:
        plan.record(deployment, error)
        cooldown = self.health.failure(deployment.name, error, time.monotonic())
        log.info("attempt failed: %s: %s", deployment.name, error)
        if cooldown:
            stats = self.health.stats(deployment.name)
            self._notify(
                deployment,
                "disabled" if error.disables_deployment else "cooldown",
                stats.last_error,
                wall_clock(stats.cooldown_until),
            )

    def _succeeded(self, deployment: Deployment, latency: float) -> None:
        if self.health.success(deployment.name, latency):
            self._notify(deployment, "healthy", None, None)

    def _notify(self, d: Deployment, state: str, reason: str | None, until: float | None) -> None:
        try:
            self.registry.notify_state_changed(
                deployment=d.name, model=d.model_name, state=state, reason=reason, until=until
            )
        except Exception:  # an observer must not break routing
            log.exception("llm_factory_deployment_state_changed hook failed")

    def _timeout_error(
        self, plan: _Plan, deployment: Deployment, what: str, silent: bool
    ) -> UpstreamTimeoutError:
        error = UpstreamTimeoutError(
            f"no {what} within the limit", provider=deployment.provider_key, deployment=deployment.name
        )
        error.silent = silent
        return error

    # -- calls ----------------------------------------------------------------------------------

    async def chat(
        self,
        request: ChatRequest,
        providers: Mapping[str, Provider],
        *,
        timeout: float | None = None,
    ) -> ChatCompletion:
        model, strategy = self.resolve(request)
        plan = _Plan(self, model, strategy, time.monotonic() + (timeout or self.settings.timeout))
        health = self.health
        try:
            async with aclosing(plan.deployments()) as deployments:
                async for deployment in deployments:
                    budget = min(plan.remaining(), deployment.timeouts.total)
                    if budget <= 0:
                        raise _DeadlineExceeded
                    name = deployment.name
                    health.begin(name)
                    started = time.monotonic()
                    try:
                        with anyio.fail_after(budget):
                            result = await providers[name].chat(self._prepare(request, deployment))
                    except TimeoutError:
                        self._failed(plan, deployment, self._timeout_error(plan, deployment, "reply", True))
                        if plan.remaining() <= 0:
                            raise _DeadlineExceeded from None
                        continue
                    except ProviderError as error:
                        self._failed(plan, deployment, error)
                        if not error.retryable and not isinstance(error, ContextLengthError):
                            raise
                        continue
                    finally:
                        health.end(name)
                    self._succeeded(deployment, time.monotonic() - started)
                    result._deployment = name
                    return result
        except _DeadlineExceeded:
            raise plan.failure(model, deadline_hit=True) from None
        raise plan.final_error(model)

    async def stream(
        self,
        request: ChatRequest,
        providers: Mapping[str, Provider],
        *,
        timeout: float | None = None,
        info: StreamInfo | None = None,
    ) -> AsyncIterator[ChatCompletionChunk]:
        model, strategy = self.resolve(request)
        plan = _Plan(self, model, strategy, time.monotonic() + (timeout or self.settings.timeout))
        info = info if info is not None else StreamInfo()
        info.attempts = plan.attempts
        health = self.health
        try:
            async with aclosing(plan.deployments()) as deployments:
                async for deployment in deployments:
                    name = deployment.name
                    budget = min(plan.remaining(), deployment.timeouts.total)
                    if budget <= 0:
                        raise _DeadlineExceeded
                    upstream = providers[name].stream(self._prepare(request, deployment))
                    health.begin(name)
                    started = time.monotonic()
                    buffered: list[ChatCompletionChunk] = []
                    try:
                        with anyio.fail_after(min(budget, deployment.timeouts.first_token)):
                            async for chunk in upstream:
                                buffered.append(chunk)
                                if chunk.has_content():
                                    break
                    except TimeoutError:
                        await _close(upstream)
                        health.end(name)
                        error = self._timeout_error(plan, deployment, "first token", not buffered)
                        self._failed(plan, deployment, error)
                        if plan.remaining() <= 0:
                            raise _DeadlineExceeded from None
                        continue
                    except ProviderError as error:
                        await _close(upstream)
                        health.end(name)
                        self._failed(plan, deployment, error)
                        if not error.retryable and not isinstance(error, ContextLengthError):
                            raise
                        continue
                    except BaseException:
                        await _close(upstream)
                        health.end(name)
                        raise
                    # Committed: from here on nothing fails over silently.
                    info.deployment, info.model = deployment, model
                    info.first_token_at = time.monotonic()
                    self._succeeded(deployment, info.first_token_at - started)
                    committed = self._committed(plan, deployment, upstream, buffered)
                    async with aclosing(committed):
                        async for chunk in committed:
                            yield chunk
                    return
        except _DeadlineExceeded:
            raise plan.failure(model, deadline_hit=True) from None
        raise plan.final_error(model)

    async def _committed(
        self,
        plan: _Plan,
        deployment: Deployment,
        upstream: AsyncIterator[ChatCompletionChunk],
        buffered: list[ChatCompletionChunk],
    ) -> AsyncIterator[ChatCompletionChunk]:
        try:
            for chunk in buffered:
                yield chunk
            while True:
                remaining = plan.remaining()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    with anyio.fail_after(remaining):
                        chunk = await upstream.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    error: ProviderError = self._timeout_error(plan, deployment, "end of stream", False)
                    self._failed(plan, deployment, error)
                    raise self._interrupted(deployment, error) from None
                except ProviderError as exc:
                    self._failed(plan, deployment, exc)
                    raise self._interrupted(deployment, exc) from exc
                yield chunk
        finally:
            await _close(upstream)
            self.health.end(deployment.name)

    @staticmethod
    def _interrupted(deployment: Deployment, cause: ProviderError) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the stream broke after it started: {type(cause).__name__}: {cause.message}",
            provider=deployment.provider_key,
            deployment=deployment.name,
            status=cause.status,
            code=cause.code,
        )


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()
