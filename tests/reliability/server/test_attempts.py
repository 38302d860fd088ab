"""The access log's ``attempts``: every upstream attempt of a request counted once, a stream that
broke after it started included (it was counted twice: once as a failed attempt, once as the
deployment that answered)."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import Serve, call
from .test_recovery import continuation_factory


def _attempts(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The access log's counts; the line is written just after the reply's last byte, so wait
    (a few seconds at most) for it."""
    give_up = time.monotonic() + 5
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]
        if lines or time.monotonic() > give_up:
            return [int(m.group(1)) for line in lines if (m := re.search(r" attempts=(\d+)", line))]
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("via", "primary", "expected"),
    [
        ("http-stream", Fault.cut(3), 1),  # broke after it started: one attempt, not two
        ("http-stream", Fault.stall(3), 1),
        ("http-stream", [Fault.server_error(500), Fault.ok()], 2),  # failed, then answered
        ("http-chat", [Fault.server_error(500), Fault.ok()], 2),
        ("http-stream", Fault.ok(), 1),
        ("http-chat", Fault.ok(), 1),
    ],
    ids=["cut", "stall", "500-then-ok-stream", "500-then-ok-chat", "ok-stream", "ok-chat"],
)
def test_each_attempt_is_counted_once(
    upstream: FaultyUpstream, serve: Serve, caplog: pytest.LogCaptureFixture, via: str, primary: object, expected: int
) -> None:
    upstream.set_rule("primary", primary)  # type: ignore[arg-type]
    server = serve()
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    reply = call(server, via)
    assert _attempts(caplog) == [expected]
    assert upstream.count("primary") == expected
    failed = expected if reply.error is not None else expected - 1  # a broken stream's attempt failed too
    assert _failovers(server) == failed


def _failovers(server: Any) -> float:
    """``llm_factory_failovers_total`` for ``primary``: the failed attempts."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llm_factory_failovers_total" and sample.labels.get("model") == "primary":
                return sample.value
    return 0.0


def test_a_continued_stream_counts_both_deployments_once(
    upstream: FaultyUpstream, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.set_rule("primary", Fault.cut(3))
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    reply = call(serve(factory=continuation_factory(upstream)), "http-stream")
    assert reply.error is None
    assert _attempts(caplog) == [2]
