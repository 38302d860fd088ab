"""A short profile of ``bench/soak.py`` in CI: the gateway at concurrency 64 over a random mix of
upstream faults. Every request gets a complete answer (checked against the fake's text) or an
explicit error; streams without ``[DONE]`` end in an error event; descriptors, upstream
connections and RSS come back to their warm-up level. Loopback only; every loop stops by itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CONCURRENCY = 64
DURATION = 15.0
WARMUP = 4.0

pytestmark = pytest.mark.slow


def _soak_module() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("llm_factory_bench_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


soak = _soak_module()


@pytest.fixture(scope="module")
def report() -> Any:
    return soak.run(DURATION, warmup=WARMUP, concurrency=CONCURRENCY, seed=11)


def test_every_request_is_answered_completely_or_fails_explicitly(report: Any) -> None:
    assert report.problems == []
    assert report.requests > CONCURRENCY * 4
    assert report.outcomes["answered"] > report.requests / 2
    explicit = report.requests - report.outcomes["answered"]
    assert explicit > 0, "the fault mix produced no errors: the soak tested nothing"
    assert report.outcomes["stream-error"] > 0  # broken streams ended in error events, checked


def test_nothing_leaks(report: Any) -> None:
    failures = soak.check(report, CONCURRENCY, crashes=False)
    assert failures == [], report.summary()


def test_the_gateway_never_crashes(report: Any) -> None:
    assert report.outcomes["gateway-crash"] == 0, dict(report.crash_types)


def test_the_checks_catch_bad_replies() -> None:
    """The soak's own checks fail on a truncated success and on a silent stream end."""
    text = soak.TEXT.replace("{model}", "primary")
    chunk = (
        '{"id":"c","object":"chat.completion.chunk","created":1,"model":"primary",'
        '"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":%s}]%s}'
    )
    usage = ',"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}'
    whole = "data: " + chunk % (text, '"stop"', usage) + "\n\n"
    assert soak.check_stream(200, (whole + "data: [DONE]\n\n").encode()) == "answered"
    cut = "data: " + chunk % (text[:10], '"stop"', usage) + "\n\n"
    with pytest.raises(AssertionError):
        soak.check_stream(200, (cut + "data: [DONE]\n\n").encode())
    with pytest.raises(AssertionError):
        soak.check_stream(200, cut.encode())  # no [DONE] and no error event
    error = 'data: {"error":{"message":"broke","type":"server_error"}}\n\n'
    partial = "data: " + chunk % (text[:10], "null", "") + "\n\n"
    assert soak.check_stream(200, (partial + error).encode()) == "stream-error"
    with pytest.raises(AssertionError):
        soak.check_json(502, b'{"detail": "bad gateway"}')
