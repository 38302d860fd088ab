import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


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
