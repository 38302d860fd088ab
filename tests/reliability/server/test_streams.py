"""The streaming contract through the gateway: after the first content a cut or a stall ends the
200 stream with an SSE error event (the SDK raises), never a silent end and never ``[DONE]``;
before it, failures fail over. One malformed event is skipped; a stream that ends after its
finish reason without ``[DONE]`` is complete, not retried, and the gateway still sends ``[DONE]``.
Silent upstreams are abandoned at their limit and the call stays inside its deadline."""

from __future__ import annotations

import time

import pytest

from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import Serve, assert_answered_by, assert_stream_broke, call, words

STREAMS = ["sdk-stream", "http-stream"]
LONG = {"first_token_timeout": 30.0, "chunk_timeout": 30.0, "timeout": 30.0}
SLACK = 1.0
QUICK = {"timeout": 0.4}
"""A smaller per-attempt limit where a non-streaming attempt has to time out (first_token_timeout
applies to streams only)."""


@pytest.mark.parametrize("via", STREAMS)
@pytest.mark.parametrize("fault", [Fault.cut(3), Fault.cut(3, reset=True), Fault.stall(3)], ids=repr)
def test_a_stream_broken_after_content_ends_with_an_error_event(
    upstream: FaultyUpstream, serve: Serve, via: str, fault: Fault
) -> None:
    upstream.set_rule("primary", fault)
    reply = call(serve(), via)
    assert_stream_broke(reply, words("primary", 3))
    assert reply.model == "primary"
    if via == "http-stream":
        assert reply.done is False and reply.error is not None
        assert reply.error["type"] and "broke" in reply.error["message"]
    assert upstream.count("primary") == 1 and upstream.count("backup") == 0  # no silent failover


@pytest.mark.parametrize("via", ["sdk-chat", "http-chat"])
@pytest.mark.parametrize("fault", [Fault.cut(3), Fault.stall(3)], ids=repr)
def test_a_json_reply_broken_half_way_is_never_a_truncated_success(
    upstream: FaultyUpstream, serve: Serve, via: str, fault: Fault
) -> None:
    upstream.set_rule("primary", fault)
    reply = call(serve(num_retries=0, timeouts=QUICK), via)
    assert_answered_by(reply, "backup")
    assert upstream.count("primary") == 1


@pytest.mark.parametrize("via", STREAMS)
@pytest.mark.parametrize("fault", [Fault.cut(0), Fault.stall(0)], ids=repr)
def test_a_stream_broken_before_content_fails_over(
    upstream: FaultyUpstream, serve: Serve, via: str, fault: Fault
) -> None:
    upstream.set_rule("primary", fault)
    reply = call(serve(num_retries=0), via)
    assert_answered_by(reply, "backup")


@pytest.mark.parametrize("via", STREAMS)
@pytest.mark.parametrize("after", [0, 2])
def test_one_malformed_event_is_skipped(upstream: FaultyUpstream, serve: Serve, via: str, after: int) -> None:
    upstream.set_rule("primary", Fault.malformed_event(after_tokens=after))
    reply = call(serve(), via)
    assert_answered_by(reply, "primary")
    assert upstream.count("primary") == 1


@pytest.mark.parametrize("via", STREAMS)
def test_a_stream_without_done_after_its_finish_reason_is_complete(
    upstream: FaultyUpstream, serve: Serve, via: str
) -> None:
    upstream.set_rule("primary", Fault.no_done())
    reply = call(serve(), via)
    assert_answered_by(reply, "primary")
    assert reply.done in (None, True)  # the gateway still ends its own stream with [DONE]
    assert upstream.count("primary") == 1  # complete: not retried


def test_silent_upstream_is_abandoned_and_not_tried_again(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.hang())
    reply = call(serve(timeouts=QUICK), via)
    assert_answered_by(reply, "backup")
    assert upstream.count("primary") == 1


@pytest.mark.parametrize("via", ["sdk-stream", "http-chat"])
def test_a_slow_first_token_beyond_its_limit_is_abandoned(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.slow_first_token(30))
    reply = call(serve(timeouts=QUICK), via)
    assert_answered_by(reply, "backup")
    assert upstream.count("primary") == 1


@pytest.mark.parametrize("via", ["sdk-chat", "http-stream"])
def test_every_deployment_silent_is_a_timeout_inside_the_deadline(
    upstream: FaultyUpstream, serve: Serve, via: str
) -> None:
    upstream.set_rule("primary", Fault.hang())
    upstream.set_rule("backup", Fault.hang())
    deadline = 0.8
    server = serve(timeouts=LONG, timeout=deadline)  # router timeout: the whole call's deadline
    started = time.monotonic()
    reply = call(server, via)
    elapsed = time.monotonic() - started
    assert elapsed < deadline + SLACK
    assert reply.status == 504, reply
    assert reply.error is not None and "deadline" in reply.error["message"]
    assert reply.text == "" and reply.done in (None, False)
    assert upstream.count("primary") == 1


@pytest.mark.parametrize("via", ["sdk-stream", "http-stream"])
def test_a_stall_past_the_call_deadline_is_an_error_event(upstream: FaultyUpstream, serve: Serve, via: str) -> None:
    upstream.set_rule("primary", Fault.stall(2))
    deadline = 0.8
    server = serve(timeouts=LONG, timeout=deadline)
    started = time.monotonic()
    reply = call(server, via)
    elapsed = time.monotonic() - started
    assert_stream_broke(reply, words("primary", 2))
    assert elapsed < deadline + SLACK
