"""A first-token limit that fits each deployment (issue 14, item 1), through the library on both
HTTP transports: after a few replies a deployment's limit is ``multiple`` x its recent p90 (within
``floor`` and the fixed limit), so a stream whose first token is late by the deployment's own
standards fails over long before the fixed limit; a model that is always slow is awaited; without
another deployment, or with a configured ``first_token_timeout``, the fixed limit applies."""

from __future__ import annotations

import time
from typing import Any

import pytest

from llm_factory_core import ConfigurationError, LLMFactory, ModelConfig
from llm_factory_core._first_token import AdaptiveFirstToken, FirstTokenLimits
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import BACKUP_KEY, PRIMARY_KEY, ROUTER, ask, assert_answered_by

pytestmark = pytest.mark.anyio

SLOW = 20.0
"""The slow primary's first token, as in the issue's scenario."""
SAMPLES = 5
LEARN: dict[str, float] = {"floor": 0.2, "min_samples": SAMPLES, "window": 20}
"""A small floor and few samples so the tests run in a second; the defaults are 5 s and 10."""
PATIENT = {"chunk_timeout": 30.0, "timeout": 30.0}
"""No fixed first-token limit (the learnt one applies) and nothing else that ends a slow start."""


def adaptive_factory(
    upstream: FaultyUpstream,
    transport: str | None = None,
    *,
    fallback: bool = True,
    primary: dict[str, Any] | None = None,
    learn: dict[str, Any] | None = None,
) -> LLMFactory:
    configs = [
        ModelConfig(provider="openai", model_name=name, name=name, api_base=upstream.base_url, api_key=key,
                    **PATIENT, **((primary or {}) if name == "primary" else {}))
        for name, key in (("primary", PRIMARY_KEY), ("backup", BACKUP_KEY))
    ]  # fmt: skip
    router = {**ROUTER, "adaptive_first_token": {**LEARN, **(learn or {})}}
    if not fallback:
        configs, router["fallbacks"] = configs[:1], {}
    return LLMFactory(configs, transport=transport, **router)


async def warm_up(factory: LLMFactory, n: int = SAMPLES) -> None:
    for _ in range(n):
        assert_answered_by(await ask(factory, "stream"), "primary")


async def test_a_late_first_token_fails_over_at_the_learnt_limit(upstream: FaultyUpstream, http_transport: str) -> None:
    async with adaptive_factory(upstream, http_transport) as f:
        await warm_up(f)
        limit = f.router.first_token.limits["primary"]
        assert LEARN["floor"] <= limit < 2.0  # the fake answers in milliseconds: about the floor
        upstream.set_rule("primary", Fault.slow_first_token(SLOW))
        started = time.monotonic()
        out = await ask(f, "stream")
        elapsed = time.monotonic() - started
    assert_answered_by(out, "backup")
    assert elapsed < 5.0  # answered by the fallback long before the slow primary would have
    assert upstream.count("primary", fault="slow_first_token") == 1  # abandoned, not retried


async def test_a_model_that_is_always_slow_is_awaited(upstream: FaultyUpstream, http_transport: str) -> None:
    """A "reasoning model": its first token always takes a while, so its limit is a multiple of that."""
    upstream.set_rule("primary", Fault.slow_first_token(0.3))
    async with adaptive_factory(upstream, http_transport) as f:
        await warm_up(f)
        assert f.router.first_token.limits["primary"] >= 0.9  # 3 x p90
        upstream.set_rule("primary", Fault.slow_first_token(0.6))  # slower than usual, not abnormal
        out = await ask(f, "stream")
    assert_answered_by(out, "primary")
    assert upstream.count("backup") == 0


async def test_without_another_deployment_the_fixed_limit_applies(
    upstream: FaultyUpstream, http_transport: str
) -> None:
    async with adaptive_factory(upstream, http_transport, fallback=False) as f:
        await warm_up(f)
        upstream.set_rule("primary", Fault.slow_first_token(1.0))  # 5 x the learnt limit
        out = await ask(f, "stream")
    assert_answered_by(out, "primary")


async def test_a_configured_first_token_timeout_overrides(upstream: FaultyUpstream, http_transport: str) -> None:
    async with adaptive_factory(upstream, http_transport, primary={"first_token_timeout": 30.0}) as f:
        await warm_up(f)
        assert "primary" not in f.router.first_token.limits
        upstream.set_rule("primary", Fault.slow_first_token(1.0))
        out = await ask(f, "stream")
    assert_answered_by(out, "primary")
    assert upstream.count("backup") == 0


async def test_it_can_be_turned_off(upstream: FaultyUpstream, http_transport: str) -> None:
    async with adaptive_factory(upstream, http_transport, learn={"enabled": False}) as f:
        await warm_up(f)
        upstream.set_rule("primary", Fault.slow_first_token(1.0))
        out = await ask(f, "stream")
    assert_answered_by(out, "primary")
    assert not f.router.first_token.limits


async def test_a_non_streaming_reply_keeps_the_attempt_timeout(upstream: FaultyUpstream, http_transport: str) -> None:
    """A JSON reply's time depends on its length; the learnt limit measures first tokens only."""
    async with adaptive_factory(upstream, http_transport) as f:
        await warm_up(f)
        upstream.set_rule("primary", Fault.slow_first_token(1.0))
        out = await ask(f, "chat")
    assert_answered_by(out, "primary")


def test_an_attempt_cut_at_the_limit_raises_it_until_slow_replies_fit() -> None:
    """Cuts count as samples at the limit: a deployment that got slower for good relearns within
    a few requests instead of failing over forever."""
    limits = FirstTokenLimits(AdaptiveFirstToken(floor=1.0, min_samples=5, window=10))
    for _ in range(5):
        limits.observe("d", 0.1, fixed=120.0)
    assert limits.limits["d"] == 1.0  # the floor
    seen = [limits.limits["d"]]
    for _ in range(10):  # every request now takes far longer: each is cut at the current limit
        limits.observe("d", limits.limits["d"], fixed=120.0)
        seen.append(limits.limits["d"])
    assert seen == sorted(seen) and seen[-1] == 120.0  # grows to the fixed limit, never beyond


def test_the_limit_stays_within_floor_and_ceiling() -> None:
    limits = FirstTokenLimits(AdaptiveFirstToken(floor=2.0, ceiling=10.0, min_samples=3, window=5))
    for t in (0.1, 0.2, 0.1):
        limits.observe("fast", t, fixed=120.0)
    for t in (30.0, 40.0, 50.0):
        limits.observe("slow", t, fixed=120.0)
        limits.observe("capped", t, fixed=8.0)
    assert limits.limits == {"fast": 2.0, "slow": 10.0, "capped": 8.0}
    assert AdaptiveFirstToken().model_dump() == {
        "enabled": True, "multiple": 3.0, "floor": 5.0, "ceiling": None, "window": 50, "min_samples": 10,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"min_samples": 60}, "min_samples (60) cannot exceed window (50)"), ({"multiple": 0.5}, "multiple")],
)
def test_bad_settings_are_a_clear_configuration_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        LLMFactory(
            {"providers": [{"provider": "openai", "model_name": "m"}], "router": {"adaptive_first_token": settings}}
        )
    assert "router.adaptive_first_token" in str(info.value) and message in str(info.value)
