"""Starting the gateway as users do: ``llm-factory serve``, ``python -m llm_factory_server`` and
``python main.py``, each a subprocess on a free 127.0.0.1 port over a fake upstream on a real socket;
plus graceful shutdown (SIGTERM while a stream is in flight)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from .helpers import PYTHON, UPSTREAM_KEY, FakeOpenAIServer, clean_env, free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(delay=0.15) as server:
        yield server


def _config(tmp_path: Path, fake: FakeOpenAIServer) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_key: ${{UPSTREAM_KEY}}\n"
        f"    api_base: {fake.url}\n"
    )
    return path


@contextmanager
def running(args: list[str], cwd: Path, port: int, **env: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=clean_env(UPSTREAM_KEY=UPSTREAM_KEY, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the gateway exited:\n{process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the gateway did not start")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server must not hang the suite
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


# uvicorn re-raises the signal after its graceful shutdown, so the exit status says "SIGTERM".
STOPPED = (0, -signal.SIGTERM)


def _output(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    process.wait(15)
    return process.stdout.read() if process.stdout else ""


def test_llm_factory_serve(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    script = shutil.which("llm-factory")
    assert script, "pip install -e ./server installs the llm-factory console script"
    port = free_port()
    config = _config(tmp_path, fake)
    with running([script, "serve", "--config", str(config), "--port", str(port)], tmp_path, port) as process:
        sdk = openai.OpenAI(api_key="x", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        reply = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from a real socket"
        sdk.close()
        output = _output(process)
    assert process.returncode in STOPPED
    assert "Finished server process" in output  # the graceful shutdown ran to its end
    assert "serving gpt-4o" in output and str(config) in output
    assert "status=200" in output and "deployment=openai/gpt-4o#1 " in output
    assert UPSTREAM_KEY not in output


def test_python_dash_m_reads_the_environment(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    port = free_port()
    env = {
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_MODEL": "env-model",
        "OPENAI_API_BASE": fake.url,
        "LLM_FACTORY_PORT": str(port),
        "LLM_FACTORY_API_KEYS": "client-1",
    }
    with running([PYTHON, "-m", "llm_factory_server"], tmp_path, port, **env):
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"authorization": "Bearer client-1"})
        assert [m["id"] for m in models.json()["data"]] == ["env-model"]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401


def test_main_py_with_no_configuration(tmp_path: Path) -> None:
    port = free_port()
    with running([PYTHON, str(REPO / "main.py"), "--port", str(port)], tmp_path, port) as process:
        body = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert body["data"] == [] and "OPENAI_API_KEY" in body["message"]
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 503
        output = _output(process)
    assert "No provider is configured" in output and process.returncode in STOPPED


def test_workers(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    port = free_port()
    config = _config(tmp_path, fake)
    args = [PYTHON, "-m", "llm_factory_server", "--config", str(config), "--port", str(port), "--workers", "2"]
    with running(args, tmp_path, port) as process:
        for _ in range(4):
            models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
            assert [m["id"] for m in models["data"]] == ["gpt-4o"]
        output = _output(process)
    assert output.count("serving gpt-4o") >= 2  # each worker built its own factory


def test_configuration_error_exits_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("providers:\n  - provider: openai\n    model_name: m\n    temprature: 1\n")
    result = subprocess.run(
        [PYTHON, str(REPO / "main.py")], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "temprature" in result.stderr


def test_graceful_shutdown(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    """SIGTERM mid-stream: the stream still ends with [DONE]; new connections are refused."""
    port = free_port()
    config = _config(tmp_path, fake)
    with running(
        [PYTHON, "-m", "llm_factory_server", "--config", str(config), "--port", str(port)], tmp_path, port
    ) as process:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        pieces: list[str] = []
        refused = False
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=20) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: {"):
                    pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
                    if len(pieces) == 2:
                        break
            process.send_signal(signal.SIGTERM)
            for _ in range(100):  # the listening socket closes as soon as the signal is handled
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                except httpx.ConnectError:
                    refused = True
                    break
                time.sleep(0.01)
            rest = list(lines)
        process.wait(15)
    assert refused
    tail = [json.loads(x[6:])["choices"][0]["delta"].get("content") or "" for x in rest if x.startswith("data: {")]
    assert "".join(pieces + tail) == "One two three"
    assert [x for x in rest if x][-1] == "data: [DONE]"
    assert process.returncode in STOPPED
