"""The status page adds no work to chat completions: its data come from a timer, not from requests."""

from __future__ import annotations

import sys
import time

import pytest

from llm_factory_server.ui import RECORDER_ATTR, Recorder

from .conftest import StartGateway


def test_chat_requests_do_no_work_for_the_page(start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = start_gateway()
    app = gw.app
    # No middleware: POST /v1/chat/completions keeps its fast path, past the router the page is on.
    assert not app.user_middleware
    recorder = getattr(app.state, RECORDER_ATTR)
    factory = app.state.llm_factory_gateway.factory
    status = factory.status
    other_reads: list[str] = []

    def counted() -> object:
        caller = sys._getframe(1).f_code
        if caller is not Recorder.sample.__code__:
            other_reads.append(caller.co_qualname)
        return status()

    monkeypatch.setattr(factory, "status", counted)
    taken = recorder.samples_taken
    started = time.monotonic()
    for _ in range(100):
        assert gw.chat("qwen-plus").status_code == 200
    elapsed = time.monotonic() - started
    # No request read the deployments' state: only the recorder's timed samples did, at most one
    # per interval whatever the traffic.
    assert other_reads == []
    assert recorder.samples_taken - taken <= 1 + elapsed / recorder.interval
    # The page's own data endpoint does not sample either: it reads the buffer.
    taken = recorder.samples_taken
    for _ in range(20):
        assert gw.http.get("/ui/api/timeseries").status_code == 200
    assert other_reads == []
    assert recorder.samples_taken - taken <= 1


def test_the_recorder_reads_the_state_and_nothing_else(start_gateway: StartGateway) -> None:
    """A wider check of the same: a request path that called into the recorder would count here."""
    gw = start_gateway()
    recorder = getattr(gw.app.state, RECORDER_ATTR)
    calls: list[str] = []
    for name in ("sample", "series"):
        original = getattr(recorder, name)

        def spy(*args: object, _name: str = name, _original: object = original) -> object:
            calls.append(_name)
            return _original(*args)  # type: ignore[operator]

        setattr(recorder, name, spy)
    for _ in range(50):
        assert gw.chat("qwen-plus").status_code == 200
    assert "series" not in calls
    assert gw.http.get("/ui/api/timeseries").status_code == 200
    assert "series" in calls
