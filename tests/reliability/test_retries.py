"""Rate limits, 5xx and resets: retried on the same model when it is worth it, never hammered,
and handed to the fallback after a bounded number of attempts."""

from __future__ import annotations

from itertools import pairwise

import pytest

from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import ROUTER, ask, assert_answered_by, make_factory

pytestmark = pytest.mark.anyio
ATTEMPTS = ROUTER["num_retries"] + 1
BEFORE_FALLBACK = min(2, ATTEMPTS)
"""Attempts on a failing primary before a healthy fallback answers: a blip is retried on the same
model, a second failure in a row is an outage and the fallback takes over (no third attempt)."""


def gaps(upstream: FaultyUpstream, model: str) -> list[float]:
    times = [r.at for r in upstream.requests if r.model == model]
    return [b - a for a, b in pairwise(times)]


async def test_short_retry_after_is_waited_out_on_the_same_model(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", [Fault.rate_limit(retry_after=1), Fault.ok()])
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "primary")  # no premature fallback
    assert upstream.count("primary") == 2
    assert upstream.count("backup") == 0
    assert gaps(upstream, "primary")[0] >= 0.9  # waited for the hint, did not hammer


async def test_retry_after_ms_is_honoured(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", [Fault.rate_limit(retry_after_ms=300), Fault.ok()])
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "chat")
    assert_answered_by(out, "primary")
    assert gaps(upstream, "primary")[0] >= 0.27


async def test_persistent_429_with_a_short_hint_reaches_the_fallback(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.rate_limit(retry_after=0.2))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == BEFORE_FALLBACK
    assert all(gap >= 0.18 for gap in gaps(upstream, "primary"))


async def test_persistent_429_without_a_hint_reaches_the_fallback(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.rate_limit())
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == BEFORE_FALLBACK
    assert upstream.count("backup") == 1


async def test_a_long_retry_after_falls_back_at_once_and_keeps_away(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.rate_limit(retry_after=30))  # beyond max_cooldown_wait
    async with make_factory(upstream.base_url) as factory:
        first = await ask(factory, mode)
        second = await ask(factory, mode)
        [status] = [s for s in factory.status() if s.name == "primary"]
    assert_answered_by(first, "backup")
    assert_answered_by(second, "backup")
    assert upstream.count("primary") == 1  # the hint is respected across requests too
    assert upstream.count("backup") == 2
    assert status.state == "cooldown" and status.until is not None


@pytest.mark.parametrize("status", [502, 503])
async def test_persistent_5xx_reaches_the_fallback_within_bounded_attempts(
    upstream: FaultyUpstream, mode: str, status: int
) -> None:
    upstream.set_rule("primary", Fault.server_error(status))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == BEFORE_FALLBACK
    assert upstream.count("backup") == 1


async def test_num_retries_bounds_the_attempts(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.server_error(503))
    async with make_factory(upstream.base_url, num_retries=0) as factory:
        out = await ask(factory, "chat")
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == 1


async def test_500_then_200_is_retried_on_the_same_model(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", [Fault.server_error(500), Fault.ok()])
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "primary")
    assert upstream.count("primary") == 2
    assert upstream.count("backup") == 0


async def test_a_reset_before_the_response_is_retried(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", [Fault.reset(), Fault.ok()])
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "primary")
    assert [r.fault for r in upstream.requests] == ["reset", "ok"]


async def test_persistent_resets_reach_the_fallback(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.reset())
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == BEFORE_FALLBACK


async def test_everything_failing_is_one_clear_error_listing_each_attempt(upstream: FaultyUpstream, mode: str) -> None:
    from llm_factory_core import AllDeploymentsFailedError, ServerError

    upstream.set_rule("primary", Fault.server_error(503))
    upstream.set_rule("backup", Fault.server_error(500))
    async with make_factory(upstream.base_url) as factory:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await ask(factory, mode)
    attempts = info.value.attempts
    # the backup, the last model, gets every round: nothing healthier is left to go to
    assert [a.model for a in attempts] == ["primary"] * BEFORE_FALLBACK + ["backup"] * ATTEMPTS
    assert all(isinstance(a.error, ServerError) for a in attempts)
    assert upstream.count() == BEFORE_FALLBACK + ATTEMPTS


def test_the_sync_api_waits_out_retry_after_too() -> None:
    with FaultyUpstream({"primary": [Fault.rate_limit(retry_after=0.3), Fault.ok()]}) as upstream:
        with make_factory(upstream.base_url) as factory:
            reply = factory.chat("hello", model="primary")
            with factory.stream("hello", model="primary") as stream:
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert reply.model == "primary" and reply.usage is not None
        assert text == reply.choices[0].message.content
        assert upstream.count("primary") == 3 and upstream.count("backup") == 0
