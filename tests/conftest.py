import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


def pytest_configure(config: pytest.Config) -> None:
    # Stores with a per-user default (the Responses store, usage records) write under
    # $XDG_STATE_HOME: never the developer's own during a test run, subprocess gateways included.
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="llm-factory-tests-state-")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = os.environ.get("XDG_STATE_HOME", "")
    if os.path.basename(state).startswith("llm-factory-tests-state-"):
        shutil.rmtree(state, ignore_errors=True)


_CONFIGURED_LOGGERS = (
    "llm_factory_server",
    "llm_factory_server.access",
    "llm_factory_core",
    "uvicorn",
    "uvicorn.error",
)


@pytest.fixture(autouse=True)
def _logging_is_left_as_found() -> Iterator[None]:
    """A test that runs the CLI's ``serve`` in-process applies the gateway's logging config
    (our loggers stop propagating to the root). Put it back so that later tests' ``caplog``
    still sees their records whatever order the suite runs in."""
    saved = [
        (logger, logger.propagate, logger.level, list(logger.handlers), logger.disabled)
        for logger in map(logging.getLogger, _CONFIGURED_LOGGERS)
    ]
    yield
    for logger, propagate, level, handlers, disabled in saved:
        logger.propagate, logger.level, logger.handlers, logger.disabled = propagate, level, handlers, disabled


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["aiohttp", "httpx"])
def http_transport(request: pytest.FixtureRequest) -> str:
    """Every HTTP transport the project ships, by name for ``LLMFactory(transport=...)``: tests
    that take this fixture run once on each, over real sockets (``testing.serve_handler``)."""
    return str(request.param)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a loopback port (skips, saying how to get one, where it is missing)."""
    pytest.importorskip("redis", reason="shared state needs redis-py: pip install 'llm-factory-core[redis]'")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: `apt-get install redis-server` (scripts/test.sh does it as root)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
