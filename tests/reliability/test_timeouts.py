"""Silent upstreams: abandoned at the first-token / total limit, not tried again in the same
request, and the whole call stays inside its deadline.

Elapsed times are checked only against the deadline plus a generous second: a correctness bound
(the call did not outlive its deadline), not a speed measurement.
"""

from __future__ import annotations

import time

import pytest

from llm_factory_core import AllDeploymentsFailedError, UpstreamTimeoutError
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import ask, assert_answered_by, make_factory

pytestmark = pytest.mark.anyio
SLACK = 1.0
LONG = {"first_token_timeout": 30.0, "chunk_timeout": 30.0, "timeout": 30.0}


async def test_a_silent_upstream_is_abandoned_and_not_tried_again(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.hang())
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == 1  # a silent upstream stays silent: no second try


async def test_a_slow_first_token_beyond_the_limit_is_abandoned(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.slow_first_token(30))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == 1


async def test_a_slow_first_token_within_the_limit_is_awaited(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.slow_first_token(0.1))
    limits = {"first_token_timeout": 3.0, "chunk_timeout": 3.0, "timeout": 3.0}
    async with make_factory(upstream.base_url, timeouts=limits) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "primary")
    assert upstream.count("backup") == 0


async def test_the_call_deadline_bounds_a_silent_upstream(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.hang())
    upstream.set_rule("backup", Fault.hang())
    deadline = 0.8
    async with make_factory(upstream.base_url, timeouts=LONG) as factory:
        started = time.monotonic()
        with pytest.raises(AllDeploymentsFailedError) as info:
            await ask(factory, mode, timeout=deadline)
        elapsed = time.monotonic() - started
    assert elapsed < deadline + SLACK
    assert "deadline" in str(info.value)
    assert upstream.count("primary") == 1


async def test_every_deployment_silent_is_a_timeout_error_within_the_deadline(
    upstream: FaultyUpstream, mode: str
) -> None:
    upstream.set_rule("primary", Fault.hang())
    upstream.set_rule("backup", Fault.slow_first_token(30))
    deadline = 5.0
    async with make_factory(upstream.base_url) as factory:
        started = time.monotonic()
        with pytest.raises(AllDeploymentsFailedError) as info:
            await ask(factory, mode, timeout=deadline)
        elapsed = time.monotonic() - started
    assert elapsed < deadline + SLACK
    assert [a.model for a in info.value.attempts] == ["primary", "backup"]
    assert all(isinstance(a.error, UpstreamTimeoutError) for a in info.value.attempts)
    assert info.value.http_status == 504
    assert upstream.count("primary") == upstream.count("backup") == 1


async def test_the_call_deadline_bounds_waiting_for_cooldowns(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.rate_limit(retry_after=5))
    upstream.set_rule("backup", Fault.rate_limit(retry_after=5))
    deadline = 1.0
    async with make_factory(upstream.base_url) as factory:
        started = time.monotonic()
        with pytest.raises(AllDeploymentsFailedError):
            await ask(factory, mode, timeout=deadline)
        elapsed = time.monotonic() - started
    assert elapsed < deadline + SLACK


async def test_a_cooldown_longer_than_the_deadline_moves_on_to_the_fallback(
    upstream: FaultyUpstream, mode: str
) -> None:
    upstream.set_rule("primary", Fault.rate_limit(retry_after=5))  # short enough to wait out...
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode, timeout=2.0)  # ...but not inside this call's deadline
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == 1


async def test_a_json_reply_that_stalls_half_way_is_abandoned(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.stall(after_tokens=0))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "chat")
    assert_answered_by(out, "backup")


async def test_headers_then_silence_is_silent_whichever_limit_fires_first(upstream: FaultyUpstream) -> None:
    # The defaults have chunk_timeout (60 s) below first_token_timeout (120 s): the read limit fires
    # first, and a retried silent upstream then costs minutes.
    upstream.set_rule("primary", Fault.slow_first_token(30))
    limits = {"first_token_timeout": 0.6, "chunk_timeout": 0.3}
    async with make_factory(upstream.base_url, timeouts=limits) as factory:
        out = await ask(factory, "stream")
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == 1
