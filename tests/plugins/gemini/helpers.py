"""Shared by the Gemini tests: the fake served on 127.0.0.1 and factories on a given transport."""

from __future__ import annotations

from typing import Any

import llm_factory_gemini
from llm_factory_core import LLMFactory, ModelConfig, ProviderType
from llm_factory_core.providers import PluginRegistry

from .fake_gemini import VALID_KEY, FakeGemini

__all__ = ["OTHER_KEY", "TOOLS", "Env", "message_from_stream", "registry"]

OTHER_KEY = "AIzaSy-fake-gemini-key-0002"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def registry() -> PluginRegistry:
    reg = PluginRegistry(entry_points=False)
    reg.register(llm_factory_gemini, origin="test")
    return reg


class Env:
    """The fake served on 127.0.0.1 and factories on the transport under test."""

    def __init__(self, fake: FakeGemini, base_url: str, transport: str) -> None:
        self.fake = fake
        self.base_url = base_url
        self.transport = transport

    def config(
        self, name: str = "first", key: str | None = VALID_KEY, model: str = "gemini-2.5-flash", **kw: Any
    ) -> ModelConfig:
        kw.setdefault("api_base", self.base_url)
        return ModelConfig(provider=ProviderType.GEMINI, model_name="gemini", model=model, api_key=key, name=name, **kw)

    def factory(self, *configs: ModelConfig, **kw: Any) -> LLMFactory:
        kw.setdefault("cooldown", 0.0)
        kw.setdefault("retry_backoff", 0.0)
        kw.setdefault("strategy", "first_available")
        return LLMFactory(list(configs) or [self.config()], transport=self.transport, registry=registry(), **kw)


def message_from_stream(chunks: list[Any]) -> dict[str, Any]:
    """What an OpenAI client assembles from stream deltas (extra fields of tool calls kept)."""
    content = ""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(
                    call.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                slot["id"] += call.id or ""
                slot["function"]["name"] += call.function.name or ""
                slot["function"]["arguments"] += call.function.arguments or ""
                extra = call.model_dump(exclude_none=True).get("extra_content")
                if extra:
                    slot["extra_content"] = extra
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message
