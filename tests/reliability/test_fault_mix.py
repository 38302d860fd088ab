"""``Fault.mix``: a random fault per request, for load and soak tests."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from llm_factory_core.testing import Fault, FaultyUpstream


def draws(rule: Fault, n: int) -> list[str]:
    with FaultyUpstream({"m": rule}) as upstream, httpx.Client() as client:
        for _ in range(n):
            client.post(upstream.base_url + "/chat/completions", json={"model": "m", "messages": []})
        return [r.fault for r in upstream.requests]


def test_a_seeded_mix_is_repeatable_and_follows_its_weights() -> None:
    rule = Fault.mix([Fault.ok(), Fault.server_error(503), Fault.rate_limit()], [6, 3, 1], seed=7)
    first, second = draws(rule, 60), draws(rule, 60)
    assert first == second
    counts = Counter(first)
    assert set(counts) == {"ok", "server_error", "rate_limit"}
    assert counts["ok"] > counts["rate_limit"]


def test_a_mix_can_hold_time_dependent_faults() -> None:
    assert set(draws(Fault.mix([Fault.down(60)]), 3)) == {"server_error"}


@pytest.mark.parametrize(
    ("choices", "weights", "error"),
    [
        ([], None, TypeError),
        (["ok"], None, TypeError),
        ([Fault.ok()], [0], ValueError),
        ([Fault.ok()], [1, 2], ValueError),
    ],
)
def test_a_bad_mix_is_refused(choices: list[Fault], weights: list[float] | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        Fault.mix(choices, weights)


def test_keep_requests_bounds_the_records_but_not_the_count() -> None:
    with FaultyUpstream(keep_requests=2) as upstream, httpx.Client() as client:
        for i in range(5):
            client.post(upstream.base_url + "/chat/completions", json={"model": f"m{i}", "messages": []})
        assert [r.model for r in upstream.requests] == ["m3", "m4"]
        assert upstream.total_requests == 5
