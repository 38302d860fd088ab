"""Waiting out a cooldown must end in an attempt, even when the clock that decides availability
is a hair behind the one the wait was computed with.

Under uvicorn's default loop (uvloop: millisecond timers on a cached loop clock) ``sleep(wait)``
can return up to a millisecond early; a shared health store (the design's Redis store) may round
or lag too. The router then finds no candidate after its wait and must look again (or move on),
never crash. The gateway hit this as an intermittent 500 on "a short Retry-After is waited out"
(``tests/reliability/server/test_failover.py``); here it is made deterministic with a store whose
availability trails its ``cooldown_until`` by 20 ms.
"""

from __future__ import annotations

import pytest

from llm_factory_core._health import InMemoryHealth
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import ROUTER, TIMEOUTS, ask, assert_answered_by, make_factory

pytestmark = pytest.mark.anyio


class LaggingHealth(InMemoryHealth):
    """Available 20 ms after ``stats().cooldown_until`` (a coarser or lagging clock)."""

    def available(self, name: str, now: float) -> bool:
        return super().available(name, now - 0.02)


async def test_a_wait_that_ends_a_hair_early_still_leads_to_an_attempt(upstream: FaultyUpstream, mode: str) -> None:
    from llm_factory_core import LLMFactory, ModelConfig

    from .conftest import BACKUP_KEY, PRIMARY_KEY

    upstream.set_rule("primary", [Fault.rate_limit(retry_after=0.2), Fault.ok()])
    configs = [
        ModelConfig(provider="openai", model_name=n, name=n, api_base=upstream.base_url, api_key=k, **TIMEOUTS)
        for n, k in (("primary", PRIMARY_KEY), ("backup", BACKUP_KEY))
    ]
    router = {**ROUTER, "cooldown": 0.0}
    async with LLMFactory(configs, health=LaggingHealth(), **router) as factory:
        out = await ask(factory, mode)
    assert_answered_by(out, "primary")


async def test_the_same_scenario_with_the_default_store_is_answered(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", [Fault.rate_limit(retry_after=0.2), Fault.ok()])
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "chat")
    assert_answered_by(out, "primary")
