"""Routing, failover and the streaming contract.

Order of attempts for one call: the strategy's pick among a model's available deployments, then the
group's other available deployments; then up to ``num_retries`` more rounds with backoff, where a
short cooldown is waited out inside the deadline; then the model's fallbacks. One deadline spans it
all. A stream commits at its first content chunk: before it any failure fails over, after it a
failure ends the stream with ``StreamInterruptedError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._balancing import Strategy
from ._bounded import uncommitted_overflow
from ._config import RouterSettings
from ._deadline import StreamDeadline, fail_after, running_loop
from ._deployment import Deployment
from ._embeddings import EmbeddingRequest, EmbeddingResponse
from ._errors import (
    Attempt,
    BadRequestError,
    ConfigurationError,
    ContextLengthError,
    ModelNotFoundError,
    ProviderError,
    StreamInterruptedError,
    UnknownStrategyError,
    UpstreamTimeoutError,
)
from ._first_token import FirstTokenLimits
from ._health import HealthStore, wall_clock
from ._hedge import hedged_first_content
from ._model_rules import apply_model_rules
from ._plan import DeadlineExceeded, Plan, Progress
from ._plugins import PluginRegistry
from ._prefill import can_prefill, continuation_request
from ._provider import Provider
from ._request import ChatRequest
from ._types import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from ._tracing import Tracing

__all__ = ["CallInfo", "Router", "StateListener"]

log = logging.getLogger("llm_factory_core.router")

_T = TypeVar("_T")


class CallInfo:
    """Filled in by ``Router.chat`` / ``Router.stream`` for callers that log or measure (the
    server): which deployment answered, and every failed attempt before it."""

    __slots__ = ("attempts", "deployment", "first_token_at", "model", "upstream")

    def __init__(self) -> None:
        self.deployment: Deployment | None = None
        self.model: str | None = None
        self.attempts: list[Attempt] = []
        self.first_token_at: float | None = None
        self.upstream = 0.0
        """Seconds spent in upstream attempts (for a stream: until its first content chunk)."""


StateListener = Callable[[Deployment, str, "str | None", "float | None"], None]
"""``listener(deployment, state, reason, until)`` for one factory's deployment state changes."""


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
        self.listeners: list[StateListener] = []
        """Per-factory observers of state changes (the hook is process-wide)."""
        self.tracing: Tracing | None = None
        """OpenTelemetry spans (``_tracing``); None: off, and this check is all it costs."""
        self.first_token = FirstTokenLimits(settings.adaptive_first_token)
        """Each deployment's first-token limit learnt from its recent replies (``_first_token``)."""
        try:  # fail at start-up, not on the first call
            self.strategy_class(settings.strategy)
        except UnknownStrategyError as exc:
            raise ConfigurationError(f"router.strategy: {exc.message}") from None

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
        """The request as this deployment sends it: its defaults for what the caller left unset,
        then its model's rules (never changing the caller's request, which failover shares)."""
        if deployment.defaults:
            update = {k: v for k, v in deployment.defaults.items() if not _is_set(request, k)}
            default_extra = deployment.defaults.get("extra_body")
            if isinstance(default_extra, dict) and request.extra_body:  # the call's keys win, the rest stay
                update["extra_body"] = {**default_extra, **request.extra_body}
            if update:
                request = request.model_copy(update=update)
        if deployment.rules:
            request = apply_model_rules(
                request,
                deployment.rules,
                deployment.settings.unsupported_params,
                provider=deployment.provider_key,
                deployment=deployment.name,
            )
        return request

    # -- bookkeeping ----------------------------------------------------------------------------

    def _failed(self, plan: Plan, deployment: Deployment, error: ProviderError) -> None:
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
            for listener in self.listeners:
                listener(d, state, reason, until)
        except Exception:  # an observer must not break routing
            log.exception("a deployment state observer failed")

    def _timeout_error(self, plan: Plan, deployment: Deployment, what: str, silent: bool) -> UpstreamTimeoutError:
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
        info: CallInfo | None = None,
    ) -> ChatCompletion:
        async def invoke(provider: Provider, deployment: Deployment) -> ChatCompletion:
            return await provider.chat(self._prepare(request, deployment))

        result, name = await self._traced(request, providers, invoke, timeout, info, "chat")
        result._deployment = name
        return result

    async def embed(
        self,
        request: EmbeddingRequest,
        providers: Mapping[str, Provider],
        *,
        timeout: float | None = None,
        info: CallInfo | None = None,
    ) -> EmbeddingResponse:
        """Embeddings with the same plan, failover and health as chat."""

        async def invoke(provider: Provider, deployment: Deployment) -> EmbeddingResponse:
            if not provider.capabilities.embeddings:
                raise BadRequestError(
                    f"provider {deployment.provider_key!r} does not serve embeddings: configure an embedding "
                    f"model (OpenAI / Azure, Qwen or Gemini) under this model name",
                    provider=deployment.provider_key,
                    deployment=deployment.name,
                    code="unsupported_operation",
                )
            return await provider.embed(request)

        result, _ = await self._traced(request, providers, invoke, timeout, info, "embeddings")
        return result

    async def _traced(
        self,
        request: Any,
        providers: Mapping[str, Provider],
        invoke: Callable[[Provider, Deployment], Awaitable[_T]],
        timeout: float | None,
        info: CallInfo | None,
        operation: str,
    ) -> tuple[_T, str]:
        """``_call``, inside the call's span when tracing is on."""
        if self.tracing is None:
            return await self._call(request, providers, invoke, timeout, info)
        return await self.tracing.call(
            self._call, request, providers, invoke, timeout, info, operation, self.default_model
        )

    async def _call(
        self,
        request: Any,
        providers: Mapping[str, Provider],
        invoke: Callable[[Provider, Deployment], Awaitable[_T]],
        timeout: float | None,
        info: CallInfo | None,
    ) -> tuple[_T, str]:
        """One whole-reply operation over the plan: attempts, failover, one deadline."""
        model, strategy = self.resolve(request)
        plan = Plan(self, model, strategy, time.monotonic() + (timeout or self.settings.timeout))
        if info is not None:
            info.attempts = plan.attempts
        health = self.health
        loop = running_loop()
        try:
            async with aclosing(plan.deployments()) as deployments:
                async for deployment in deployments:
                    budget = min(plan.remaining(), deployment.timeouts.total)
                    if budget <= 0:
                        raise DeadlineExceeded
                    name = deployment.name
                    health.begin(name)
                    started = time.monotonic()
                    try:
                        async with fail_after(budget, loop):
                            result = await invoke(providers[name], deployment)
                    except TimeoutError:
                        self._failed(plan, deployment, self._timeout_error(plan, deployment, "reply", True))
                        if plan.remaining() <= 0:
                            raise DeadlineExceeded from None
                        continue
                    except ProviderError as error:
                        self._failed(plan, deployment, error)
                        if not error.retryable and not isinstance(error, ContextLengthError):
                            raise
                        continue
                    finally:
                        health.end(name)
                        if info is not None:
                            info.upstream += time.monotonic() - started
                    self._succeeded(deployment, time.monotonic() - started)
                    if info is not None:
                        info.deployment, info.model = deployment, model
                    return result, name
        except DeadlineExceeded:
            raise plan.failure(model, deadline_hit=True) from None
        raise plan.final_error(model)

    def stream(
        self,
        request: ChatRequest,
        providers: Mapping[str, Provider],
        *,
        timeout: float | None = None,
        info: CallInfo | None = None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        if self.tracing is None:
            return self._stream(request, providers, timeout=timeout, info=info)
        return self.tracing.stream(self._stream, request, providers, timeout, info, self.default_model)

    async def _stream(
        self,
        request: ChatRequest,
        providers: Mapping[str, Provider],
        *,
        timeout: float | None = None,
        info: CallInfo | None = None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        model, strategy = self.resolve(request)
        plan = Plan(self, model, strategy, time.monotonic() + (timeout or self.settings.timeout))
        info = info if info is not None else CallInfo()
        info.attempts = plan.attempts
        loop = running_loop()
        try:
            async with aclosing(plan.deployments()) as deployments:
                async for deployment in deployments:
                    started = time.monotonic()
                    try:
                        if deployment.hedge and loop is not None and plan.alternatives:
                            won = await hedged_first_content(
                                self, plan, deployment, deployments, providers, request, loop
                            )
                            deployment, opened, started = won if won is not None else (deployment, None, started)
                        else:
                            opened = await self._first_content(plan, deployment, providers, request, loop)
                    finally:
                        info.upstream += time.monotonic() - started
                    if opened is None:
                        continue
                    # Committed: from here on nothing fails over silently.
                    info.deployment, info.model = deployment, model
                    info.first_token_at = time.monotonic()
                    self._succeeded(deployment, info.first_token_at - started)
                    if deployment.adaptive_first_token:
                        self.first_token.observe(
                            deployment.name, info.first_token_at - started, deployment.timeouts.first_token
                        )
                    progress = Progress() if self.settings.stream_continuation else None
                    committed = self._committed(plan, deployment, *opened, progress, loop)
                    try:
                        async with aclosing(committed):
                            async for chunk in committed:
                                yield chunk
                    except StreamInterruptedError as broken:
                        if progress is None or not progress.can_continue():
                            raise
                        continuation = self._continue(
                            plan, deployments, providers, request, progress, broken, info, loop
                        )
                        async with aclosing(continuation):
                            async for chunk in continuation:
                                yield chunk
                    return
        except DeadlineExceeded:
            raise plan.failure(model, deadline_hit=True) from None
        raise plan.final_error(model)

    async def _first_content(
        self,
        plan: Plan,
        deployment: Deployment,
        providers: Mapping[str, Provider],
        request: ChatRequest,
        loop: asyncio.AbstractEventLoop | None,
    ) -> tuple[AsyncIterator[ChatCompletionChunk], list[ChatCompletionChunk]] | None:
        """Open a stream and read up to its first content chunk. None: the attempt failed in a
        way that fails over (recorded); raises for request errors and the deadline."""
        name = deployment.name
        budget = min(plan.remaining(), deployment.timeouts.total)
        if budget <= 0:
            raise DeadlineExceeded
        try:
            prepared = self._prepare(request, deployment)
        except ProviderError as error:  # a model rule under the "fail" policy: the request's fault
            self._failed(plan, deployment, error)
            raise
        fixed = deployment.timeouts.first_token
        learnt = self.first_token.limits.get(name) if plan.alternatives and not deployment.hedge else None
        if learnt is not None and learnt >= min(budget, fixed):
            learnt = None  # the fixed limit or the deadline comes first anyway
        upstream = providers[name].stream(prepared)
        self.health.begin(name)
        buffered: list[ChatCompletionChunk] = []
        held, cap = 0, self.settings.max_uncommitted_bytes  # content-less chunks held, bounded
        try:
            async with fail_after(min(budget, fixed) if learnt is None else learnt, loop):
                async for chunk in upstream:
                    buffered.append(chunk)
                    if chunk.has_content():
                        break
                    if len(buffered) > 1:  # the usual lone role chunk is not measured (one event)
                        held += len(chunk.model_dump_json())
                        if held > cap:
                            raise uncommitted_overflow(deployment.provider_key, deployment.name, cap)
        except TimeoutError:
            await _close(upstream)
            self.health.end(name)
            what = "first token"
            if learnt is not None:  # its time was at least the limit: a sample there lets a slower model relearn
                self.first_token.observe(name, learnt, fixed)
                what = f"first token (learnt from its recent replies: {learnt:.2f} s; router.adaptive_first_token)"
            self._failed(plan, deployment, self._timeout_error(plan, deployment, what, not buffered))
            if plan.remaining() <= 0:
                raise DeadlineExceeded from None
            return None
        except ProviderError as error:
            await _close(upstream)
            self.health.end(name)
            if isinstance(error, UpstreamTimeoutError) and not buffered:
                error.silent = True  # headers then nothing: silent, whichever limit fired first
            self._failed(plan, deployment, error)
            if not error.retryable and not isinstance(error, ContextLengthError):
                raise
            return None
        except BaseException:
            await _close(upstream)
            self.health.end(name)
            raise
        return upstream, buffered

    async def _committed(
        self,
        plan: Plan,
        deployment: Deployment,
        upstream: AsyncIterator[ChatCompletionChunk],
        buffered: list[ChatCompletionChunk],
        progress: Progress | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        deadline = None
        if loop is not None and (task := asyncio.current_task(loop)) is not None:
            deadline = StreamDeadline(loop, task, loop.time() + plan.remaining())
        try:
            for chunk in buffered:
                if progress is not None:
                    progress.observe(chunk)
                yield chunk
            while True:
                try:
                    if deadline is not None:
                        chunk = await deadline.read(upstream)
                    else:  # another event loop (trio): a scope per read
                        remaining = plan.remaining()
                        if remaining <= 0:
                            raise TimeoutError
                        async with fail_after(remaining, loop):
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
                if progress is not None:
                    progress.observe(chunk)
                yield chunk
        finally:
            if deadline is not None:
                deadline.cancel()
            await _close(upstream)
            self.health.end(deployment.name)

    async def _continue(
        self,
        plan: Plan,
        deployments: AsyncGenerator[Deployment, None],
        providers: Mapping[str, Provider],
        request: ChatRequest,
        progress: Progress,
        broken: StreamInterruptedError,
        info: CallInfo,
        loop: asyncio.AbstractEventLoop | None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Ask the next deployment that supports assistant prefill to continue the text already
        sent. Any failure or refusal there reports the original break, never the refusal."""
        capable = [
            d
            for m in plan.models
            for d in self.groups[m]
            if can_prefill(d) and d.name not in plan.excluded and d is not info.deployment
        ]
        if not capable:  # nobody can continue: say so now, not after walking the plan with backoffs
            raise broken
        text = progress.text()
        async for deployment in deployments:
            if not can_prefill(deployment):
                continue
            continued = continuation_request(request, text, deployment)
            started = time.monotonic()
            try:
                opened = await self._first_content(plan, deployment, providers, continued, loop)
            except (ProviderError, DeadlineExceeded):
                raise broken from None
            if opened is None:
                continue
            info.deployment = deployment
            self._succeeded(deployment, time.monotonic() - started)
            committed = self._committed(plan, deployment, *opened, None, loop)
            async with aclosing(committed):
                async for chunk in committed:
                    if chunk.choices and not chunk.has_content():
                        continue  # the continuation's own role chunk
                    chunk.id, chunk.created = progress.id, progress.created
                    yield chunk
            return
        raise broken

    @staticmethod
    def _interrupted(deployment: Deployment, cause: ProviderError) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the stream broke after it started: {type(cause).__name__}: {cause.message}",
            provider=deployment.provider_key,
            deployment=deployment.name,
            status=cause.status,
            code=cause.code,
        )


_SAME_SETTING: dict[str, tuple[str, ...]] = {
    "max_tokens": ("max_tokens", "max_completion_tokens"),
    "max_completion_tokens": ("max_tokens", "max_completion_tokens"),
}
"""A default for one of these is not applied when the caller set either: both cap the output, and
sending both is rejected by reasoning models (a default ``max_tokens`` must not ride along with the
caller's ``max_completion_tokens``)."""


def _is_set(request: ChatRequest, name: str) -> bool:
    return any(getattr(request, n, None) is not None for n in _SAME_SETTING.get(name, (name,)))


async def _close(iterator: AsyncIterator[Any]) -> None:
    if getattr(iterator, "ag_frame", True) is None:
        return  # an async generator that ran to its end: nothing to close, no cancel scope to pay for
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()
