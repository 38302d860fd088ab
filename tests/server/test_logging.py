"""One log line per request: id, model, deployment, status, latency, tokens; no secrets, no content."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from .conftest import Serve
from .helpers import CLIENT_KEY, UPSTREAM_KEY, Upstream, client, error_reply, make_factory

SECRET_PROMPT = "my secret diary entry"


def _lines(caplog: pytest.LogCaptureFixture, expected: int | None = None) -> list[str]:
    # The line is written once the last byte is sent, which may be just after the client read it.
    for _ in range(500):
        lines = [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]
        if expected is None or len(lines) >= expected:
            break
        time.sleep(0.01)
    return lines


def test_one_line_per_request(upstream: Upstream, serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server")
    server = serve(make_factory(upstream), api_keys=[CLIENT_KEY])
    sdk = client(server, CLIENT_KEY)
    messages = [{"role": "user", "content": SECRET_PROMPT}]
    sdk.chat.completions.create(model="gpt-4o", messages=messages)
    list(sdk.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
    upstream.script("a", lambda r: error_reply(400, "bad temperature", "invalid_value"))
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": messages},
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "req-abc-123"},
    )
    assert response.status_code == 400 and response.headers["x-request-id"] == "req-abc-123"
    lines = _lines(caplog, 3)
    assert len(lines) == 3
    chat, stream, failed = lines
    assert "model='gpt-4o'" in chat and "deployment=a-gpt-4o" in chat and "status=200" in chat
    assert "tokens=9/12" in chat and "latency_ms=" in chat and "stream=false" in chat
    assert "stream=true" in stream and "ttft_ms=" in stream and "ttft_ms=-" not in stream
    assert failed.startswith("req-abc-123 ") and "status=400" in failed
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (SECRET_PROMPT, CLIENT_KEY, UPSTREAM_KEY, "Hello from upstream"):
        assert secret not in everything


def test_content_only_when_asked(upstream: Upstream, serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server")
    server = serve(make_factory(upstream), log_content=True)
    sdk = client(server)
    sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}])
    list(sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}], stream=True))
    chat, stream = _lines(caplog, 2)
    assert SECRET_PROMPT in chat and "Hello from upstream" in chat
    assert "reply='Hello!'" in stream


def test_request_log_can_be_switched_off(upstream: Upstream, serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server")
    server = serve(make_factory(upstream), log_requests=False)
    client(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert _lines(caplog) == []


def test_hostile_request_id_is_replaced(gateway, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="llm_factory_server")
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"x-request-id": "x" * 500},
    )
    rid = response.headers["x-request-id"]
    assert len(rid) == 16 and _lines(caplog, 1)[0].startswith(rid)


def test_the_line_formatter_keeps_uvicorns_layout_and_tracebacks() -> None:
    from llm_factory_server._log_output import LineFormatter

    formatter = LineFormatter()
    record = logging.LogRecord("llm_factory_server.access", logging.INFO, __file__, 1, "req-1 status=%d", (200,), None)
    assert formatter.format(record) == "INFO:     req-1 status=200"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("llm_factory_server", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = formatter.format(failed).splitlines()
    assert lines[0] == "ERROR:    failed" and lines[-1] == "ValueError: boom"


def test_the_gateway_process_skips_record_fields_its_lines_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_factory_server._log_output import LineFormatter
    from llm_factory_server._serve import _lean_log_records

    for name in ("logProcesses", "logThreads", "logMultiprocessing", "_srcfile"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored after the test
    _lean_log_records()
    logger = logging.getLogger("llm_factory_server.access")
    record = logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, "req-1 status=%d", (200,), None)
    assert record.process is None and record.thread is None and record.processName is None
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[assignment,method-assign]
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.INFO)
    try:
        logger.info("one line")
    finally:
        logger.removeHandler(handler)
    assert seen[0].pathname == "(unknown file)" and seen[0].process is None  # no stack walk, no getpid
    assert LineFormatter().format(record) == "INFO:     req-1 status=200"
