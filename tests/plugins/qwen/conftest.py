"""Shared helpers: a fresh fake per test and factories wired to it over httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_factory_core import LLMFactory, ModelConfig

from .fake_dashscope import KEY, FakeDashScope

NATIVE_BASE = "https://dashscope.aliyuncs.com/api/v1"
COMPAT_BASE = "https://dashscope.aliyuncs.com/compatible-mode/v1"


@pytest.fixture
def fake() -> FakeDashScope:
    return FakeDashScope()


def qwen_config(base: str | None = NATIVE_BASE, **overrides: Any) -> ModelConfig:
    data: dict[str, Any] = {"provider": "qwen", "model_name": "qwen-turbo", "api_key": KEY, **overrides}
    if base is not None:
        data["api_base"] = base
    return ModelConfig.model_validate(data)


def make_factory(fake: FakeDashScope, *configs: ModelConfig, **options: Any) -> LLMFactory:
    options.setdefault("cooldown", 0.0)
    options.setdefault("retry_backoff", 0.0)
    options.setdefault("num_retries", 0)
    return LLMFactory(list(configs) or [qwen_config()], transport=fake.transport, **options)


@pytest.fixture(params=["native", "compatible"])
def base(request: pytest.FixtureRequest) -> Iterator[str]:
    yield NATIVE_BASE if request.param == "native" else COMPAT_BASE
