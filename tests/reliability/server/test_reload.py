"""Config reload through the gateway (issue 14, item 4): ``SIGHUP`` to ``llm-factory serve`` (a
subprocess) and ``POST /admin/reload`` (the admin key). New deployments join, a removed one
finishes its in-flight stream, a bad file is rejected with a clear error and the old
configuration keeps serving."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core.testing import Fault, FaultyUpstream
from llm_factory_server._app import _build
from llm_factory_server._gateway import Gateway
from tests.server.helpers import PYTHON, ServerThread, free_port
from tests.server.test_cli import _output, running

from ..conftest import PROMPT, expected_text
from .conftest import Reply, parse_sse

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ADMIN = "admin-key-for-reload-tests-0001"
CLIENT = {"authorization": "Bearer client-key-for-reload-tests-0002"}


def write(path: Path, upstream: FaultyUpstream, *names: str, extra: str = "", server: str = "") -> None:
    lines = ["providers:"]
    for n in names:
        lines.append(f"  - {{provider: openai, model_name: {n}, name: {n}, api_base: '{upstream.base_url}', "
                     f"api_key: sk-{n}-key-0001, first_token_timeout: 5, timeout: 10}}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n" + extra + server)


def models(url: str, headers: dict[str, str] | None = None) -> list[str]:
    return [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=5, headers=headers).json()["data"]]


def eventually(predicate: Any, within: float = 10.0) -> None:
    give_up = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < give_up, "not within the bound"
        time.sleep(0.05)


def stream_in_background(url: str, model: str, out: Reply, headers: dict[str, str] | None = None) -> threading.Thread:
    def run() -> None:
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
        with httpx.Client(timeout=15) as client:
            response = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        out.status = response.status_code
        parse_sse(out, response.text)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def slow_primary(upstream: FaultyUpstream) -> FaultyUpstream:
    upstream.set_rule("primary", Fault.ok(token_delay=0.1))  # about 1.2 s per stream
    return upstream


def test_sighup_reloads_without_dropping_the_stream_in_flight(tmp_path: Path, slow_primary: FaultyUpstream) -> None:
    config = tmp_path / "config.yaml"
    write(config, slow_primary, "primary")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [PYTHON, "-m", "llm_factory_server", "--config", str(config), "--port", str(port)]
    with running(args, tmp_path, port) as process:
        assert models(url) == ["primary"]
        out = Reply(0)
        thread = stream_in_background(url, "primary", out)
        eventually(lambda: slow_primary.count("primary") == 1)  # the stream is in flight
        write(config, slow_primary, "backup")
        process.send_signal(signal.SIGHUP)
        eventually(lambda: models(url) == ["backup"])
        thread.join(15)
        assert out.status == 200 and out.done and out.text == expected_text("primary")  # nothing dropped
        assert out.error is None
        # A bad file: rejected, the running configuration stays.
        write(config, slow_primary, "backup", extra="router:\n  fallbacks: {backup: [nowhere]}\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert models(url) == ["backup"]
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                           json={"model": "backup", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
        output = _output(process)
    assert "configuration reloaded on SIGHUP: added: backup; removed: primary" in output
    assert "configuration reload rejected" in output and "'nowhere' is not a configured model_name" in output
    assert "sk-backup-key-0001" not in output


@pytest.fixture
def gateway_from_file(tmp_path: Path, upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)  # no stray ./.env or ./config.yaml
    config = tmp_path / "config.yaml"
    server = f"server:\n  admin_key: {ADMIN}\n  api_keys: [client-key-for-reload-tests-0002]\n"
    write(config, upstream, "primary", server=server)
    gateway = Gateway.discover(str(config))
    thread = ServerThread(_build(gateway)).start()

    def rewrite(*names: str, extra: str = "") -> None:
        write(config, upstream, *names, extra=extra, server=server)

    yield thread, rewrite
    thread.stop()


def test_admin_reload(gateway_from_file: Any, slow_primary: FaultyUpstream) -> None:
    server, rewrite = gateway_from_file
    admin = {"authorization": f"Bearer {ADMIN}"}
    assert httpx.post(f"{server.url}/admin/reload", timeout=5).status_code == 401  # the admin key only
    out = Reply(0)
    thread = stream_in_background(server.url, "primary", out, CLIENT)
    eventually(lambda: slow_primary.count("primary") == 1)
    rewrite("backup")
    reply = httpx.post(f"{server.url}/admin/reload", headers=admin, timeout=5)
    assert reply.status_code == 200, reply.text
    assert reply.json() | {"unchanged": []} == {
        "reloaded": True, "added": ["backup"], "removed": ["primary"], "changed": [], "unchanged": [],
    }  # fmt: skip
    assert models(server.url, CLIENT) == ["backup"]
    thread.join(15)
    assert out.status == 200 and out.done and out.text == expected_text("primary")
    rewrite("backup", extra="router:\n  fallbacks: {backup: [nowhere]}\n")
    reply = httpx.post(f"{server.url}/admin/reload", headers=admin, timeout=5)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_configuration" and "'nowhere' is not a configured model_name" in error["message"]
    assert "sk-backup" not in reply.text
    assert models(server.url, CLIENT) == ["backup"]
    answer = httpx.post(f"{server.url}/v1/chat/completions", timeout=10, headers=CLIENT,
                        json={"model": "backup", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == expected_text("backup")
