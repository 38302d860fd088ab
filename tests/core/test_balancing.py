"""Load-balancing strategies: distributions, health awareness, priorities, registration."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from llm_factory_core import ConfigurationError, LLMFactory, UnknownStrategyError, hookimpl
from llm_factory_core.providers import Deployment, PluginRegistry, Strategy

from .helpers import Hosts, cfg, error, text_reply

pytestmark = pytest.mark.anyio

THREE = ["a", "b", "c"]


def three_hosts() -> Hosts:
    return Hosts(**{h: text_reply(h) for h in THREE})


async def test_round_robin_spreads_evenly() -> None:
    hosts = three_hosts()
    async with hosts.factory([cfg(h) for h in THREE]) as f:
        for _ in range(30):
            await f.chat_async("hi", model="gpt-4o", load_balance_strategy="round_robin")
    assert Counter(hosts.hosts) == {"a": 10, "b": 10, "c": 10}
    assert hosts.hosts[:3] == ["a", "b", "c"]


async def test_round_robin_skips_a_cooling_deployment() -> None:
    hosts = Hosts(a=text_reply("a"), b=error(429, headers={"retry-after": "60"}), c=text_reply("c"))
    async with hosts.factory([cfg(h) for h in THREE]) as f:
        for _ in range(9):
            await f.chat_async("hi")
    assert Counter(hosts.hosts)["b"] == 1


async def test_random_uses_every_deployment() -> None:
    hosts = three_hosts()
    async with hosts.factory([cfg(h) for h in THREE]) as f:
        for _ in range(60):
            await f.chat_async("hi", load_balance_strategy="random")
    counts = Counter(hosts.hosts)
    assert set(counts) == set(THREE) and min(counts.values()) >= 5


async def test_first_available_sticks_to_the_first_healthy() -> None:
    hosts = Hosts(a=error(500), b=text_reply("b"), c=text_reply("c"))
    async with hosts.factory([cfg(h) for h in THREE], cooldown=60) as f:
        for _ in range(5):
            await f.chat_async("hi", load_balance_strategy="first_available")
    assert hosts.hosts == ["a", "b", "b", "b", "b", "b"]


async def test_weighted_follows_weights() -> None:
    hosts = Hosts(a=text_reply("a"), b=text_reply("b"))
    async with hosts.factory([cfg("a", weight=9), cfg("b", weight=1)], strategy="weighted") as f:
        for _ in range(200):
            await f.chat_async("hi")
    counts = Counter(hosts.hosts)
    assert counts["a"] > 140 and counts["b"] >= 1


def _factory_with(hosts: Hosts) -> LLMFactory:
    return hosts.factory([cfg(h) for h in THREE])


async def test_least_busy_prefers_fewest_in_flight() -> None:
    hosts = three_hosts()
    async with _factory_with(hosts) as f:
        names = [d.name for d in f.deployments]
        f.health.begin(names[0])
        f.health.begin(names[0])
        f.health.begin(names[2])
        await f.chat_async("hi", load_balance_strategy="least_busy")
    assert hosts.hosts == ["b"]


async def test_latency_prefers_the_fastest_after_measuring_each() -> None:
    hosts = three_hosts()
    async with _factory_with(hosts) as f:
        names = [d.name for d in f.deployments]
        for _ in range(3):  # every deployment gets measured first
            await f.chat_async("hi", load_balance_strategy="latency")
        assert sorted(hosts.hosts) == THREE
        for name, latency in zip(names, (0.5, 0.05, 0.9), strict=True):
            f.health.stats(name).latency_ewma = latency
        await f.chat_async("hi", load_balance_strategy="latency")
    assert hosts.hosts[-1] == "b"


async def test_priority_tiers_make_standbys() -> None:
    hosts = Hosts(a=text_reply("a"), b=text_reply("b"), c=[error(500), text_reply("c")])
    configs = [cfg("c", priority=0), cfg("a", priority=1), cfg("b", priority=1)]
    async with hosts.factory(configs, cooldown=60) as f:
        for _ in range(4):
            await f.chat_async("hi")
    assert hosts.hosts[0] == "c"
    assert set(hosts.hosts[1:]) == {"a", "b"}


async def test_max_concurrency_skips_a_full_deployment() -> None:
    hosts = Hosts(a=text_reply("a"), b=text_reply("b"))
    async with hosts.factory([cfg("a", max_concurrency=1), cfg("b")], strategy="first_available") as f:
        f.health.begin(f.deployments[0].name)
        await f.chat_async("hi")
    assert hosts.hosts == ["b"]


async def test_unknown_strategy_lists_valid_ones() -> None:
    hosts = three_hosts()
    async with _factory_with(hosts) as f:
        with pytest.raises(UnknownStrategyError) as info:
            await f.chat_async("hi", load_balance_strategy="fastest")
    message = str(info.value)
    for name in ("round_robin", "random", "first_available", "weighted", "least_busy", "latency"):
        assert name in message
    assert hosts.hosts == []


def test_unknown_default_strategy_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"router\.strategy: Unknown load_balance_strategy 'nope'"):
        LLMFactory([cfg("a")], strategy="nope")


async def test_a_plugin_registers_a_strategy() -> None:
    class LastOne(Strategy):
        name = "last_one"

        def pick(self, candidates: Sequence[Deployment]) -> Deployment:
            return max(candidates, key=lambda d: d.index)

    class Plugin:
        @hookimpl
        def llm_factory_register_strategies(self, register):  # type: ignore[no-untyped-def]
            register("last_one", LastOne)

    registry = PluginRegistry(entry_points=False)
    registry.register(_openai_plugin())
    registry.register(Plugin())
    hosts = three_hosts()
    async with LLMFactory([cfg(h) for h in THREE], transport=hosts.upstream.transport, registry=registry) as f:
        await f.chat_async("hi", load_balance_strategy="last_one")
    assert hosts.hosts == ["c"]


def _openai_plugin() -> object:
    import llm_factory_openai

    return llm_factory_openai
