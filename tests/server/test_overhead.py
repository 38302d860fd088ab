"""The gateway's own overhead on every chat completions reply: ``x-llm-factory-overhead-ms`` (time
in the gateway minus time waiting on upstreams, up to the reply's start) and the Prometheus
histogram ``llm_factory_gateway_overhead_seconds``. Slow upstreams show the waiting is left out."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from llm_factory_core.testing import json_response, openai_chunks, openai_completion, sse_response

from .helpers import ServerThread, gateway_over

HEADER = "x-llm-factory-overhead-ms"
DELAY = 0.3
"""Seconds each fake upstream waits before it answers: far more than the gateway's own time."""


async def slow_upstream(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(DELAY)
    if request.url.path.startswith("/fail/"):
        body = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
        return json_response(body, 503)
    if json.loads(request.content).get("stream"):
        return sse_response(openai_chunks(["Hel", "lo"]))
    return json_response(openai_completion("Hello"))


@contextmanager
def gateway(http_transport: str, *paths: str, **settings: Any) -> Iterator[ServerThread]:
    paths = tuple(f"/{p}" for p in paths or ("ok",))
    router = {"strategy": "first_available"}
    with gateway_over(slow_upstream, http_transport, paths=paths, router=router, **settings) as server:
        yield server


def overhead_ms(reply: httpx.Response) -> float:
    value = reply.headers[HEADER]
    assert re.fullmatch(r"\d+\.\d{3}", value), value  # milliseconds, three decimals
    return float(value)


JSON = {"content-type": "application/json"}
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_a_json_reply_carries_the_gateways_own_time_not_the_upstreams(http_transport: str) -> None:
    with gateway(http_transport) as server:
        # A fresh gateway's first request pays one-time costs (up to ~150 ms seen when the test
        # session has loaded many modules): the second is measured.
        httpx.post(f"{server.url}/v1/chat/completions", json=BODY, timeout=10)
        started = time.monotonic()
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=BODY, timeout=10)
        total_ms = (time.monotonic() - started) * 1000
    assert reply.status_code == 200
    overhead = overhead_ms(reply)
    assert total_ms >= DELAY * 1000
    # The upstream's 300 ms are left out: what remains is the gateway's work (well under 100 ms).
    assert 0 <= overhead < min(100.0, total_ms - DELAY * 1000 + 1)


def test_a_stream_carries_it_up_to_its_first_chunk(http_transport: str) -> None:
    with gateway(http_transport) as server:
        started = time.monotonic()
        body = {**BODY, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=10) as reply:
            first_byte_ms = (time.monotonic() - started) * 1000
            text = b"".join(reply.iter_bytes())
    assert text.endswith(b"data: [DONE]\n\n")
    overhead = overhead_ms(reply)
    assert first_byte_ms >= DELAY * 1000
    assert 0 <= overhead < min(100.0, first_byte_ms - DELAY * 1000 + 1)


def test_failed_attempts_count_as_upstream_time_and_errors_carry_the_header_too(http_transport: str) -> None:
    with gateway(http_transport, "fail", "ok") as server:
        started = time.monotonic()
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=BODY, timeout=10)
        total_ms = (time.monotonic() - started) * 1000
        assert reply.status_code == 200 and total_ms >= 2 * DELAY * 1000
        assert 0 <= overhead_ms(reply) < 100.0  # both attempts' 300 ms are the upstreams'
        missing = httpx.post(f"{server.url}/v1/chat/completions", json={**BODY, "model": "nope"}, timeout=10)
        assert missing.status_code == 404 and 0 <= overhead_ms(missing) < 100.0
        invalid = httpx.post(f"{server.url}/v1/chat/completions", content=b"{", headers=JSON, timeout=10)
        assert invalid.status_code == 400 and 0 <= overhead_ms(invalid) < 100.0


def test_every_attempt_failing_still_leaves_out_the_waiting(http_transport: str) -> None:
    with gateway(http_transport, "fail") as server:
        started = time.monotonic()
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=BODY, timeout=10)
        stream = httpx.post(f"{server.url}/v1/chat/completions", json={**BODY, "stream": True}, timeout=10)
        total_ms = (time.monotonic() - started) * 1000
    assert reply.status_code == stream.status_code == 502 and total_ms >= 2 * DELAY * 1000
    assert 0 <= overhead_ms(reply) < 100.0 and 0 <= overhead_ms(stream) < 100.0


@pytest.mark.parametrize("keys", [[], ["client-key-0001"]])
def test_the_histogram_counts_every_reply_by_kind(http_transport: str, keys: list[str]) -> None:
    headers = {"authorization": "Bearer client-key-0001"} if keys else {}
    with gateway(http_transport, api_keys=keys) as server:
        url = f"{server.url}/v1/chat/completions"
        replies = [httpx.post(url, json=BODY, headers=headers, timeout=10) for _ in range(2)]
        with httpx.stream("POST", url, json={**BODY, "stream": True}, headers=headers, timeout=10) as s:
            b"".join(s.iter_bytes())
        metrics = httpx.get(f"{server.url}/metrics", headers=headers).text
    assert all(r.status_code == 200 for r in replies)
    counts = dict(re.findall(r'^llm_factory_gateway_overhead_seconds_count\{stream="(\w+)"\} (\S+)$', metrics, re.M))
    assert counts == {"false": "2.0", "true": "1.0"}
    total = float(re.search(r'^llm_factory_gateway_overhead_seconds_sum\{stream="false"\} (\S+)$', metrics, re.M)[1])  # type: ignore[index]
    assert abs(total * 1000 - sum(overhead_ms(r) for r in replies)) < 0.01  # the header's figures, summed
    assert 'llm_factory_gateway_overhead_seconds_bucket{le="0.001",stream="false"}' in metrics
