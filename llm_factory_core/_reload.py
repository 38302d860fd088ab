"""Replacing a factory's configuration while it serves requests (``LLMFactory.reload``).

Nothing is dropped: a request takes the router and the provider instances of its moment once, at
its start, so requests in flight finish on what they started with (a removed deployment drains),
while new requests see the new configuration. Everything is validated before anything changes: a
bad configuration raises ``ConfigurationError`` and the old one stays.

Unchanged deployments (same name, same settings) keep their ``Deployment`` and provider objects, so
their health, learnt first-token limit and connections carry on. A changed deployment (a new key,
say) is rebuilt and starts healthy: a key that was disabled as bad gets its chance at once. Router
settings apply to every new request; transport and shared-state settings need a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._config import FactoryConfig, build_deployments
from ._deployment import Deployment
from ._health import DeploymentStats, InMemoryHealth
from ._provider import Provider
from ._router import Router

if TYPE_CHECKING:
    from ._factory import LLMFactory

__all__ = ["ReloadResult", "reload_factory"]

log = logging.getLogger("llm_factory_core.reload")

_DRAIN_POLL = 0.2


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload changed, by deployment name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    def summary(self) -> str:
        parts = [f"{k}: {', '.join(v)}" for k, v in self._asdict().items() if v and k != "unchanged"]
        return "; ".join(parts) or "no deployment changed"

    def _asdict(self) -> dict[str, tuple[str, ...]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed, "unchanged": self.unchanged}


def _same(a: Deployment, b: Deployment) -> bool:
    return (
        a.provider_cls is b.provider_cls
        and a.model_name == b.model_name
        and a.settings == b.settings  # keys included (SecretStr compares its value)
        and a.timeouts == b.timeouts
        and a.weight == b.weight
        and a.priority == b.priority
        and a.defaults == b.defaults
        and a.max_concurrency == b.max_concurrency
        and a.prefill == b.prefill
        and a.prefill_params == b.prefill_params
        and a.adaptive_first_token == b.adaptive_first_token
        and a.hedge == b.hedge
    )


def reload_factory(factory: LLMFactory, config: FactoryConfig, source: str) -> ReloadResult:
    """Swap ``factory`` over to ``config``; see the module docstring. Call it on the event loop
    that serves the factory's requests (the gateway does, on SIGHUP): it never awaits, so no request
    sees half a change."""
    fresh = build_deployments(config.providers, factory.registry, source)  # may raise: nothing changed yet
    old = {d.name: d for d in factory.deployments}
    limits_same = config.router.limits() == factory.config.router.limits()
    deployments: list[Deployment] = []
    kept: set[str] = set()
    for d in fresh:
        previous = old.get(d.name)
        if previous is not None and limits_same and _same(previous, d):
            previous.index = d.index  # its place in the new configuration (first_available)
            deployments.append(previous)
            kept.add(d.name)
        else:
            deployments.append(d)
    router = Router(deployments, config.router, factory.registry, factory.health)  # may raise too
    previous_router = factory.router
    new_names = {d.name for d in deployments}
    result = ReloadResult(
        added=tuple(d.name for d in deployments if d.name not in old),
        removed=tuple(n for n in old if n not in new_names),
        changed=tuple(d.name for d in deployments if d.name in old and d.name not in kept),
        unchanged=tuple(n for n in old if n in kept),
    )
    # -- from here on nothing can fail: carry state over, then swap ------------------------------
    router.listeners = previous_router.listeners
    router.tracing = previous_router.tracing
    if router.tracing is not None:  # in-flight requests may still name removed deployments
        router.tracing.deployments.update({d.name: d for d in deployments})
    learnt = previous_router.first_token
    for name in (*result.removed, *result.changed):
        learnt.forget(name)
    if learnt.settings == router.first_token.settings:
        router.first_token = learnt
    for name in result.changed:
        _fresh_health(factory, name)
    retired: list[tuple[str, Provider]] = []
    for runtime in factory._runtimes.values():
        providers: dict[str, Provider] = {}
        limits = config.router.limits()
        for d in deployments:
            if d.name in kept and d.name in runtime.providers:
                providers[d.name] = runtime.providers[d.name]
            else:
                providers[d.name] = d.provider_cls(
                    d.settings, client=runtime.client, name=d.name, timeouts=d.timeouts, limits=limits
                )
        retired.extend((n, p) for n, p in runtime.providers.items() if providers.get(n) is not p)
        runtime.providers = providers
    factory.config = config
    factory.deployments = deployments
    factory.router = router
    if retired:
        _close_when_drained(factory, retired, previous_router.settings.timeout)
    log.info("configuration reloaded from %s: %s", source, result.summary())
    return result


def _fresh_health(factory: LLMFactory, name: str) -> None:
    """A changed deployment starts healthy (its cooldown or disablement concerned the old
    settings); in-flight counts stay, the requests they count are still running."""
    health = factory.health
    if isinstance(health, InMemoryHealth):
        stats = health.stats(name)
        health._stats[name] = DeploymentStats(in_flight=stats.in_flight)


def _close_when_drained(factory: LLMFactory, retired: Sequence[tuple[str, Provider]], longest: float) -> None:
    """Close retired provider instances once no request uses their deployment name any more
    (or after the longest a request can last). Without a running loop they are left to the
    garbage collector: providers share the factory's client and rarely own anything else."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_drain(factory, retired, longest))
    _DRAINING.add(task)
    task.add_done_callback(_DRAINING.discard)


_DRAINING: set[asyncio.Task[Any]] = set()


async def _drain(factory: LLMFactory, retired: Sequence[tuple[str, Provider]], longest: float) -> None:
    give_up = time.monotonic() + longest
    names = {n for n, _ in retired}
    while time.monotonic() < give_up and any(factory.health.stats(n).in_flight > 0 for n in names):
        await asyncio.sleep(_DRAIN_POLL)
    for name, provider in retired:
        try:
            await provider.aclose()
        except Exception:  # closing a retired provider must not take the gateway down
            log.exception("closing the retired provider of %s failed", name)
