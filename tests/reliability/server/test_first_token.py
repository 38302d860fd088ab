"""Through the gateway: a stream whose first token is late by its deployment's recent standards
fails over to the fallback at the learnt limit (``router.adaptive_first_token``), long before the
slow primary would have answered; a non-streaming reply keeps the attempt timeout."""

from __future__ import annotations

import logging
import time

import pytest

from llm_factory_core.testing import Fault, FaultyUpstream

from ..test_first_token import SAMPLES, SLOW, adaptive_factory
from .conftest import Serve, assert_answered_by, call


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
def test_a_late_first_token_fails_over_at_the_learnt_limit(
    upstream: FaultyUpstream, serve: Serve, via: str, http_transport: str
) -> None:
    server = serve(factory=adaptive_factory(upstream, http_transport))
    for _ in range(SAMPLES):
        assert_answered_by(call(server, via), "primary")
    upstream.set_rule("primary", Fault.slow_first_token(SLOW))
    started = time.monotonic()
    reply = call(server, via)
    assert_answered_by(reply, "backup")
    assert time.monotonic() - started < 5.0  # the slow primary would have taken 20 s
    assert upstream.count("primary", fault="slow_first_token") == 1


@pytest.mark.parametrize("via", ["sdk-chat", "http-chat"])
def test_a_slow_json_reply_is_awaited(upstream: FaultyUpstream, serve: Serve, via: str, http_transport: str) -> None:
    server = serve(factory=adaptive_factory(upstream, http_transport))
    for _ in range(SAMPLES):
        assert_answered_by(call(server, via.replace("chat", "stream")), "primary")
    upstream.set_rule("primary", Fault.slow_first_token(1.0))
    assert_answered_by(call(server, via), "primary")


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
def test_a_hedged_stream_is_answered_by_whichever_sends_content_first(
    upstream: FaultyUpstream, serve: Serve, via: str, http_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(factory=adaptive_factory(upstream, http_transport, primary={"hedge": True}))
    for _ in range(SAMPLES):
        assert_answered_by(call(server, via), "primary")
    upstream.set_rule("primary", Fault.slow_first_token(0.6))  # late by its own standards...
    upstream.set_rule("backup", Fault.slow_first_token(5.0))  # ...yet first: the hedge keeps it
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    assert_answered_by(call(server, via), "primary")
    assert upstream.count("backup") == 1  # started beside it, then cancelled
    give_up = time.monotonic() + 5
    while not (lines := [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]):
        assert time.monotonic() < give_up
        time.sleep(0.01)
    assert " attempts=2" in lines[-1] and "deployment=primary " in lines[-1]  # both attempts counted
