"""A primary that goes down for a while and comes back: requests during the outage are answered by
the fallback, and the primary is used again within seconds of recovering (the circuit closes).
Small cooldowns (``cooldown=0.05``, ``cooldown_max=0.2``) keep it fast."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import pytest

from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import ask, assert_answered_by, make_factory

pytestmark = pytest.mark.anyio
OUTAGE = 1.0
RECOVERY_BOUND = 3.0
"""The primary must answer again within this many seconds after its outage ends (generous: with
cooldown_max=0.2 it takes a fraction of a second)."""


@dataclass
class Answer:
    started: float
    finished: float
    model: str


@pytest.mark.parametrize("during", [Fault.server_error(503), Fault.reset(), Fault.rate_limit()], ids=repr)
async def test_a_flapping_primary(upstream: FaultyUpstream, mode: str, during: Fault) -> None:
    upstream.set_rule("primary", Fault.down(OUTAGE, during=during))
    answers: list[Answer] = []
    async with make_factory(upstream.base_url, cooldown_max=0.2) as factory:
        give_up = time.monotonic() + OUTAGE + RECOVERY_BOUND + 2
        while time.monotonic() < give_up:
            started = time.monotonic()
            out = await ask(factory, mode)  # every request is answered, outage or not
            answers.append(Answer(started, time.monotonic(), str(out.model)))
            assert_answered_by(out, str(out.model))
            if [a.model for a in answers[-3:]] == ["primary"] * 3:
                break
            await anyio.sleep(0.02)
        [status] = [s for s in factory.status() if s.name == "primary"]

    outage_end = upstream.requests[0].at + OUTAGE  # the outage starts at the primary's first request
    during_outage = [a for a in answers if a.finished < outage_end]
    assert during_outage, "no request completed during the outage"
    assert all(a.model == "backup" for a in during_outage)
    recovered = [a for a in answers if a.model == "primary"]
    assert recovered, "the primary was never used again"
    assert recovered[0].finished < outage_end + RECOVERY_BOUND
    assert [a.model for a in answers[-3:]] == ["primary"] * 3  # and it stays in use
    assert status.state == "healthy" and status.until is None
    # Probed, not hammered: at most one round of attempts per request during the outage.
    failed = upstream.count("primary") - len(recovered)
    assert failed <= 3 * len(during_outage) + 3
