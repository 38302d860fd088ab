"""Retries and failover through the gateway: the library's scenarios, seen by an openai SDK client
and a raw HTTP client, streaming and not (primary + one fallback, ``num_retries=2``)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from llm_factory_core.testing import Fault, FaultyUpstream

from ..conftest import ROUTER
from .conftest import Serve, assert_answered_by, call

ATTEMPTS = ROUTER["num_retries"] + 1
BEFORE_FALLBACK = min(2, ATTEMPTS)
"""Attempts on a failing primary before a healthy fallback answers: a blip is retried on the same
model, a second failure in a row is an outage and the fallback takes over (no third attempt)."""
SLOW = ["sdk-chat", "http-stream"]
"""For scenarios that wait a second: one client and mode each way."""


def gaps(upstream: FaultyUpstream, model: str) -> list[float]:
    return [b - a for a, b in pairwise(r.at for r in upstream.requests if r.model == model)]


@pytest.mark.parametrize("via", SLOW)
def test_a_short_retry_after_is_waited_out_on_the_same_model(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", [Fault.rate_limit(retry_after=1), Fault.ok()])
    reply = call(serve(), via)
    assert_answered_by(reply, "primary")
    assert upstream.count("primary") == 2 and upstream.count("backup") == 0
    assert gaps(upstream, "primary")[0] >= 0.9


@pytest.mark.parametrize(
    "fault", [Fault.rate_limit(retry_after=0.1), Fault.rate_limit(), Fault.server_error(503)], ids=repr
)
def test_persistent_429_or_503_reaches_the_fallback_in_bounded_attempts(
    upstream: FaultyUpstream, serve: Serve, via: str, fault: Fault
) -> None:
    upstream.set_rule("primary", fault)
    reply = call(serve(), via)
    assert_answered_by(reply, "backup")
    assert upstream.count("primary") == BEFORE_FALLBACK and upstream.count("backup") == 1


def test_500_then_200_is_retried_on_the_same_model(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", [Fault.server_error(500), Fault.ok()])
    reply = call(serve(), via)
    assert_answered_by(reply, "primary")
    assert [r.fault for r in upstream.requests] == ["server_error", "ok"]


def test_a_reset_before_the_response_is_retried(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", [Fault.reset(), Fault.ok()])
    reply = call(serve(), via)
    assert_answered_by(reply, "primary")
    assert [r.fault for r in upstream.requests] == ["reset", "ok"]


def test_everything_failing_is_one_error_envelope(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.server_error(503))
    upstream.set_rule("backup", Fault.server_error(500))
    reply = call(serve(num_retries=0), via)
    assert reply.status in (502, 503), reply  # an upstream failure, never a 200 and never a hang
    assert reply.error is not None and reply.error["message"] and reply.error["type"]
    assert reply.text == "" and reply.done in (None, False)
    assert upstream.count() == 2


def test_context_length_goes_straight_to_the_fallback(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.context_length())
    reply = call(serve(), via)
    assert_answered_by(reply, "backup")
    assert upstream.count("primary") == 1 and upstream.count("backup") == 1  # no blind resend


def test_content_filter_is_one_attempt_and_a_400_envelope(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.content_filter())
    reply = call(serve(), via)
    assert reply.status == 400
    assert reply.error is not None
    assert reply.error["code"] == "content_filter"
    assert "content management policy" in reply.error["message"]
    assert reply.error["type"]
    assert upstream.count("primary") == 1 and upstream.count("backup") == 0
