"""Real-looking secrets, a gateway that logs everything (DEBUG, uvicorn's access log on) and a
leak detector: a secret, or any 8+ character piece of it, anywhere it must not be."""

from __future__ import annotations

import logging
import secrets
import socket
import string
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import uvicorn

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import FaultyUpstream
from tests.reliability.server.conftest import app_closing

_ALNUM = string.ascii_letters + string.digits


def openai_key() -> str:
    return "sk-proj-" + "".join(secrets.choice(_ALNUM) for _ in range(40))


OPENAI_KEY = openai_key()
AZURE_KEY = secrets.token_hex(16)  # Azure keys are 32 hex characters
CLIENT_KEY = "sk-gw-" + "".join(secrets.choice(_ALNUM) for _ in range(32))
SECRETS = (OPENAI_KEY, AZURE_KEY, CLIENT_KEY)


def leaks(text: str, secrets_: Iterable[str] = SECRETS) -> list[str]:
    """Pieces of 8+ characters of any secret found in ``text`` (a masked ``...abcd`` is fine, and
    so is the public ``sk-proj-`` prefix alone, which every OpenAI project key shares)."""
    found = []
    for secret in secrets_:
        for i in range(len(secret) - 7):
            piece = secret[i : i + 8]
            if piece != "sk-proj-" and piece in text:
                found.append(piece)
    return found


def configs(upstream: FaultyUpstream, **limits: float) -> list[ModelConfig]:
    """``primary``: OpenAI with a project key; ``backup``: Azure OpenAI (classic URL, api-key)."""
    return [
        ModelConfig(provider="openai", model_name="primary", name="primary", api_base=upstream.base_url,
                    api_key=OPENAI_KEY, **limits),
        ModelConfig(provider="openai", model_name="backup", name="backup", api_base=upstream.url, api_key=AZURE_KEY,
                    api_version="2024-10-21", azure=True, **limits),
    ]  # fmt: skip


class LoggingGateway:
    """The gateway with client keys, request logging and uvicorn's DEBUG + access logs, on 127.0.0.1."""

    def __init__(self, factory: LLMFactory, **settings: Any) -> None:
        # The gateway closes the factory's connections of its loop when it stops.
        app = app_closing(factory, api_keys=[CLIENT_KEY], **settings)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_config=None, access_log=True, log_level="debug", loop="asyncio", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LoggingGateway:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    with FaultyUpstream() as server:
        yield server


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in (
        "uvicorn",
        "uvicorn.access",
        "uvicorn.error",
        "httpx",
        "httpcore",
        "llm_factory_server",
        "llm_factory_core",
    ):
        caplog.set_level(logging.DEBUG, logger=name)
        # A uvicorn started earlier with access_log=False turned uvicorn.access's propagation off.
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    return caplog


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's message, arguments and formatted traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(formatter.format(record))
        parts.append(repr(record.args))
    return "\n".join(parts)
