"""``llm-factory models | plugins | chat | status``: against the config directly and against a
running gateway (``--url``), with helpful errors and exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_factory_server._cli import main

from .conftest import Serve
from .helpers import CLIENT_KEY, UPSTREAM_KEY, FakeOpenAIServer, Upstream, deployment, error_reply, make_factory


def run(*argv: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if stdin is not None and monkeypatch is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(pieces=("One", " two", " three")) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, fake: FakeOpenAIServer) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n"
        f"  - {{provider: openai, model_name: gpt-4o, api_key: {UPSTREAM_KEY}, api_base: '{fake.url}'}}\n"
        f"  - {{provider: openai, model_name: mini, api_key: {UPSTREAM_KEY}, api_base: '{fake.url}'}}\n"
    )
    return path


def test_plugins_lists_every_installed_provider_with_its_version() -> None:
    code, out, _ = run("plugins", "--json")
    assert code == 0
    rows = {r["key"]: r for r in json.loads(out)}
    assert {"openai", "qwen", "deepseek", "claude", "gemini"} <= set(rows)
    assert rows["claude"]["distribution"] == "llm-factory-claude" and rows["claude"]["version"]
    assert "streaming" in rows["openai"]["capabilities"]


def test_models_from_the_config(config: Path) -> None:
    code, out, _ = run("models", "--config", str(config))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "OWNED_BY"] and [line.split()[0] for line in lines[1:]] == ["gpt-4o", "mini"]


def test_status_from_the_config(config: Path) -> None:
    code, out, _ = run("status", "--config", str(config), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["state"] for r in rows] == ["healthy", "healthy"]
    assert UPSTREAM_KEY not in out


def test_chat_streams_from_the_config(config: Path) -> None:
    code, out, _ = run("chat", "--config", str(config), "-m", "mini", "Hi")
    assert code == 0 and out == "One two three\n"


def test_chat_reads_stdin(config: Path, fake: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(
        "chat", "--config", str(config), "--no-stream", "-s", "terse", "-", stdin="from stdin", monkeypatch=monkeypatch
    )
    assert code == 0 and out == "Hello from a real socket\n"
    assert fake.bodies[-1]["messages"] == [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "from stdin"},
    ]


def test_against_a_running_gateway(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream), api_keys=[CLIENT_KEY])
    code, out, _ = run("chat", "--url", server.url, "--key", CLIENT_KEY, "Hi")
    assert code == 0 and out == "Hello!\n"
    code, out, _ = run("models", "--url", server.url, "--key", CLIENT_KEY, "--json")
    assert code == 0 and [m["id"] for m in json.loads(out)] == ["gpt-4o"]
    code, out, _ = run("status", "--url", server.url, "--key", CLIENT_KEY)
    assert code == 0 and "healthy" in out
    code, _, err = run("models", "--url", server.url, "--key", "wrong-key")
    assert code == 1 and "401" in err


def test_a_failed_call_exits_1_with_the_reason(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(400, "messages: bad things", "invalid_value"))
    server = serve(make_factory(upstream, deployment("a")))
    code, out, err = run("chat", "--url", server.url, "Hi")
    assert code == 1 and out == "" and "bad things" in err


def test_unknown_model_locally_exits_1(config: Path) -> None:
    code, _, err = run("chat", "--config", str(config), "-m", "nope", "Hi")
    assert code == 1 and "'nope' does not exist" in err


def test_no_configuration_exits_2_saying_how_to_configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("models")
    assert code == 2 and "No provider is configured" in err


def test_an_unreachable_gateway_exits_1() -> None:
    from .helpers import free_port

    code, _, err = run("models", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach the gateway" in err


def test_help_everywhere() -> None:
    for command in ("models", "plugins", "chat", "status", "serve"):
        with pytest.raises(SystemExit) as exit_info:
            run(command, "--help")
        assert exit_info.value.code == 0
