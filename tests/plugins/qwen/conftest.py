"""Shared helpers: a fresh DashScope fake per test, served on 127.0.0.1 and reached over real
sockets on every HTTP transport the project ships (``http_transport``: aiohttp and httpx).

``make_factory`` points each config's ``api_base`` at the served fake, keeping its path (so
``/api/v1`` stays the native API and ``/compatible-mode/v1`` the compatible one). ``mock_fake``
is for the few tests about which *host* a URL names (regions, the default base): those need the
host kept, so they run on ``httpx.MockTransport``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from llm_factory_core import LLMFactory, ModelConfig

from .fake_dashscope import KEY, FakeDashScope

NATIVE_BASE = "https://dashscope.aliyuncs.com/api/v1"
COMPAT_BASE = "https://dashscope.aliyuncs.com/compatible-mode/v1"


@pytest.fixture
def fake(http_transport: str) -> Iterator[FakeDashScope]:
    fake = FakeDashScope()
    with fake.serve() as url:
        fake.live_url = url
        fake.live_transport = http_transport
        yield fake


@pytest.fixture
def mock_fake() -> FakeDashScope:
    return FakeDashScope()


def qwen_config(base: str | None = NATIVE_BASE, **overrides: Any) -> ModelConfig:
    data: dict[str, Any] = {"provider": "qwen", "model_name": "qwen-turbo", "api_key": KEY, **overrides}
    if base is not None:
        data["api_base"] = base
    return ModelConfig.model_validate(data)


def _live(config: ModelConfig, url: str) -> ModelConfig:
    base = config.model_dump().get("api_base")
    if base is None:
        raise AssertionError("a config without api_base names Beijing's host: use the mock_fake fixture")
    return config.model_copy(update={"api_base": url + urlsplit(base).path})


def make_factory(fake: FakeDashScope, *configs: ModelConfig, **options: Any) -> LLMFactory:
    options.setdefault("cooldown", 0.0)
    options.setdefault("retry_backoff", 0.0)
    options.setdefault("num_retries", 0)
    configs = configs or (qwen_config(),)
    if fake.live_url is None:
        return LLMFactory(list(configs), transport=fake.transport, **options)
    live = [_live(c, fake.live_url) for c in configs]
    return LLMFactory(live, transport=fake.live_transport, **options)


@pytest.fixture(params=["native", "compatible"])
def base(request: pytest.FixtureRequest) -> Iterator[str]:
    yield NATIVE_BASE if request.param == "native" else COMPAT_BASE
