"""Hedged streams (``hedge: true``, off by default), through the library on both HTTP transports:
past its learnt first-token limit the primary is not abandoned: the fallback starts beside it and
whichever sends content first answers; the other is cancelled (its connection closed) and
recorded as an attempt."""

from __future__ import annotations

import time

import pytest

from llm_factory_core import CallInfo, LLMFactory
from llm_factory_core._hedge import HedgeCancelled
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import PROMPT, Outcome, assert_answered_by
from .test_first_token import adaptive_factory, warm_up

pytestmark = pytest.mark.anyio


async def hedged_stream(factory: LLMFactory) -> tuple[Outcome, CallInfo]:
    """One stream to ``primary`` through the router, with its ``CallInfo`` (every attempt)."""
    request = factory.build_request(
        PROMPT, {"model": "primary", "stream_options": {"include_usage": True}}, stream=True
    )
    info, out = CallInfo(), Outcome()
    async for chunk in factory.router.stream(request, factory.providers(), info=info):
        out.add(chunk)
    assert info.deployment is not None
    out.deployment = info.deployment.name
    return out, info


async def test_the_fallback_started_beside_a_late_primary_answers(
    upstream: FaultyUpstream, http_transport: str
) -> None:
    async with adaptive_factory(upstream, http_transport, primary={"hedge": True}) as f:
        await warm_up(f)
        upstream.set_rule("primary", Fault.slow_first_token(20.0))
        started = time.monotonic()
        out, info = await hedged_stream(f)
        assert time.monotonic() - started < 5.0
        assert_answered_by(out, "backup")
        [attempt] = info.attempts  # the primary: cancelled, recorded, not a failure of the deployment
        assert attempt.deployment == "primary" and isinstance(attempt.error, HedgeCancelled)
        assert f.status()[0].state == "healthy"
        assert f.health.stats("primary").in_flight == 0  # the cancelled attempt is over, its stream closed


async def test_the_primary_keeps_the_reply_when_it_is_first_after_all(
    upstream: FaultyUpstream, http_transport: str
) -> None:
    async with adaptive_factory(upstream, http_transport, primary={"hedge": True}) as f:
        await warm_up(f)
        upstream.set_rule("primary", Fault.slow_first_token(0.6))  # past its limit (about 0.2 s)...
        upstream.set_rule("backup", Fault.slow_first_token(5.0))  # ...but the backup is slower still
        out, info = await hedged_stream(f)
        assert_answered_by(out, "primary")
        [attempt] = info.attempts
        assert attempt.deployment == "backup" and isinstance(attempt.error, HedgeCancelled)
        assert upstream.count("backup") == 1  # it was started
        assert f.health.stats("backup").in_flight == 0


async def test_hedging_is_off_by_default(upstream: FaultyUpstream, http_transport: str) -> None:
    async with adaptive_factory(upstream, http_transport) as f:
        await warm_up(f)
        upstream.set_rule("primary", Fault.slow_first_token(0.6))
        upstream.set_rule("backup", Fault.slow_first_token(5.0))
        out, info = await hedged_stream(f)  # the primary is abandoned at its limit: the backup answers
        assert_answered_by(out, "backup")
        assert [type(a.error).__name__ for a in info.attempts] == ["UpstreamTimeoutError"]
