"""Shared by the DeepSeek tests: a factory whose deployments talk to a served fake."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llm_factory_core import LLMFactory, ModelConfig, ProviderType
from llm_factory_core.testing import serve_handler

from .fake_deepseek import FakeDeepSeek

KEY = "sk-deepseek-today-key-0001"
SPARE = "sk-deepseek-today-key-0002"
WEATHER: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def deepseek(model: str = "deepseek-flash", key: str = KEY, **kw: Any) -> ModelConfig:
    kw.setdefault("name", key[-4:])
    return ModelConfig(provider=ProviderType.DEEPSEEK, model_name=model, api_key=key, **kw)


def call_id() -> str:
    """A tool-call id unique to this test run (the reasoning memory is per process)."""
    return f"call_00_{uuid.uuid4().hex[:16]}"


def tool_call(call: str, city: str = "Paris") -> dict[str, Any]:
    return {"id": call, "type": "function", "function": {"name": "weather", "arguments": f'{{"city": "{city}"}}'}}


@contextlib.asynccontextmanager
async def served(fake: FakeDeepSeek, transport: str, *configs: ModelConfig, **kw: Any) -> AsyncIterator[LLMFactory]:
    """A factory whose deployments talk to ``fake`` on 127.0.0.1 over ``transport``."""
    kw.setdefault("retry_backoff", 0.0)
    kw.setdefault("strategy", "first_available")
    with serve_handler(fake) as base:
        configs = tuple(c.model_copy(update={"api_base": base}) for c in (configs or (deepseek(),)))
        async with LLMFactory(list(configs), transport=transport, **kw) as factory:
            yield factory
