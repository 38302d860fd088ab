"""``adapt_chunk`` may split one upstream event into several chunks (plugin authors asked: an
upstream that puts the usage on its finish chunk gives OpenAI's separate usage chunk)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import LLMFactory, ModelConfig, hookimpl
from llm_factory_core.providers import OpenAICompatibleProvider, OpenAIStreamState, PluginRegistry
from llm_factory_core.testing import MockUpstream, openai_chunks, sse_response


class SplittingProvider(OpenAICompatibleProvider):
    key = "splitting"
    default_api_base = "https://split.test/v1"

    def adapt_chunk(
        self, data: dict[str, Any], state: OpenAIStreamState
    ) -> dict[str, Any] | list[dict[str, Any]] | None:
        adapted = super().adapt_chunk(data, state)
        if isinstance(adapted, dict) and adapted.get("usage") and adapted.get("choices"):
            usage = adapted.pop("usage")
            return [adapted, {**adapted, "choices": [], "usage": usage}]
        return adapted


class Plugin:
    @hookimpl
    def llm_factory_register_providers(self, register: Any) -> None:
        register(SplittingProvider)


@pytest.mark.anyio
async def test_one_event_becomes_two_chunks() -> None:
    chunks = openai_chunks(["Hi"], include_usage=False)
    chunks[-1]["usage"] = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}  # usage on the finish
    upstream = MockUpstream(lambda r: sse_response(chunks))
    registry = PluginRegistry(entry_points=False)
    registry.register(Plugin(), origin="tests")
    config = ModelConfig(provider="splitting", model_name="m", api_key="k-0000-0000-0000")
    async with LLMFactory(config, transport=upstream.transport, registry=registry) as factory:
        out = [c async for c in factory.stream_async("hi", stream_options={"include_usage": True})]
    assert out[-2].choices[0].finish_reason == "stop" and out[-2].usage is None
    assert out[-1].choices == [] and out[-1].usage is not None and out[-1].usage.total_tokens == 4
