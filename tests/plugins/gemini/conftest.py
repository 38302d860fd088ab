from collections.abc import Iterator

import pytest

from llm_factory_core.providers import reasoning_memory

from .fake_gemini import FakeGemini
from .helpers import Env


@pytest.fixture
def env(http_transport: str) -> Iterator[Env]:
    """The fake on a real socket, and factories on each HTTP transport the project ships."""
    fake = FakeGemini()
    with fake.serve() as url:
        yield Env(fake, url, http_transport)


@pytest.fixture(autouse=True)
def _forget_signatures() -> Iterator[None]:
    """Each test starts with an empty reasoning memory (it is per process)."""
    reasoning_memory.clear()
    yield
    reasoning_memory.clear()
