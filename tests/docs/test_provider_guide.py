"""docs/writing-a-provider.md is true: its Mistral and Acme plugins work, the Acme one passes the
conformance kit exactly as the guide's test is written, and runs over real sockets on both
transports."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core import LLMFactory, ModelConfig, StreamInterruptedError, hookimpl
from llm_factory_core.providers import PluginRegistry
from llm_factory_core.testing import MockUpstream, json_response, openai_completion, serve_handler, sse_response

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-provider.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)
MISTRAL, ACME, SPLICED, KIT = BLOCKS


def module_from(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = str(GUIDE)
    sys.modules[name] = module
    exec(compile(source, f"{GUIDE.name}:{name}", "exec"), module.__dict__)
    return module


mistral = module_from("llm_factory_mistral", MISTRAL)
acme = module_from("llm_factory_acme", ACME)
exec(compile(SPLICED, f"{GUIDE.name}:spliced", "exec"), acme.__dict__)  # the same module, streamed per read
exec(compile(KIT, f"{GUIDE.name}:conformance", "exec"), globals())  # defines TestAcmeConformance


def registry(plugin: types.ModuleType) -> PluginRegistry:
    reg = PluginRegistry(entry_points=False)
    reg.register(plugin, origin=plugin.__name__)
    return reg


def test_the_mistral_plugin_adapts_max_completion_tokens() -> None:
    upstream = MockUpstream(lambda r: json_response(openai_completion("bonjour")))
    config = ModelConfig(provider="mistral", model_name="mistral-large", api_key="mistral-key-0001")
    with LLMFactory(config, transport=upstream.transport, registry=registry(mistral)) as factory:
        assert factory.chat("salut", max_completion_tokens=64).choices[0].message.content == "bonjour"
    body = json.loads(upstream.requests[0].content)
    assert upstream.requests[0].url == "https://api.mistral.ai/v1/chat/completions"
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body


def acme_upstream(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    assert request.headers["authorization"] == "Bearer acme-key-0001" and body["safe"] is True
    if body["stream"]:
        events: list[dict[str, Any]] = [{"type": "delta", "text": t} for t in ("Hel", "lo")]
        return sse_response([*events, {"type": "end", "finish": "max_tokens", "usage": {"input": 3, "output": 2}}])
    return json_response({"id": "7", "text": "Hello", "finish": "done", "usage": {"input": 3, "output": 2}})


def test_the_acme_plugin_over_real_sockets(http_transport: str) -> None:
    with serve_handler(acme_upstream) as base:
        config = ModelConfig(
            provider="acme", model_name="acme-1", api_key="acme-key-0001", api_base=base + "/v2", safe_mode=True
        )
        with LLMFactory(config, transport=http_transport, registry=registry(acme)) as factory:
            reply = factory.chat("Hi")
            chunks = list(factory.stream("Hi", stream_options={"include_usage": True}))
    assert reply.choices[0].message.content == "Hello" and reply.usage is not None and reply.usage.total_tokens == 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].choices == []


class AcmeBoth:
    @hookimpl
    def llm_factory_register_providers(self, register: Any) -> None:
        register(acme.AcmeProvider)
        register(acme.AcmeSplicedProvider)


@pytest.mark.parametrize("reads", ["one", "split"])
def test_the_spliced_acme_stream_gives_the_same_chunks(http_transport: str, reads: str) -> None:
    async def upstream(request: httpx.Request) -> httpx.Response:
        reply = acme_upstream(request)
        if reads == "split" and json.loads(request.content)["stream"]:  # events cut across reads
            body = await reply.aread()

            async def pieces() -> Any:
                for i in range(0, len(body), 5):
                    yield body[i : i + 5]
                    await asyncio.sleep(0.001)

            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=pieces())
        return reply

    streams = {}
    with serve_handler(upstream) as base:
        for provider in ("acme", "acme-spliced"):
            config = ModelConfig(
                provider=provider, model_name="acme-1", api_key="acme-key-0001", api_base=base + "/v2", safe_mode=True
            )
            registry_both = PluginRegistry(entry_points=False)
            registry_both.register(AcmeBoth(), origin="tests")
            with LLMFactory(config, transport=http_transport, registry=registry_both) as factory:
                chunks = list(factory.stream("Hi", stream_options={"include_usage": True}))
            streams[provider] = [c.model_dump(exclude={"id", "created"}) for c in chunks]
    assert streams["acme-spliced"] == streams["acme"] and len(streams["acme"]) == 4


@pytest.mark.anyio
async def test_the_spliced_acme_stream_raises_after_the_chunks_before_an_error() -> None:
    events = [{"type": "delta", "text": "Hel"}, {"type": "error", "message": "overloaded"}]
    upstream = MockUpstream(lambda r: sse_response(events))
    config = ModelConfig(provider="acme-spliced", model_name="acme-1", api_key="acme-key-0001")
    registry_both = PluginRegistry(entry_points=False)
    registry_both.register(AcmeBoth(), origin="tests")
    seen = []
    async with LLMFactory(config, transport=upstream.transport, registry=registry_both) as factory:
        with pytest.raises(StreamInterruptedError, match="overloaded"):
            async for c in factory.stream_async("Hi"):
                seen.append(c.choices[0].delta.content)
    assert seen == ["Hel"]


def test_the_guide_has_the_four_examples() -> None:
    assert "class MistralProvider" in MISTRAL and "class AcmeProvider" in ACME and "ProviderConformance" in KIT
    assert "class AcmeChunks" in SPLICED
    assert pytest is not None
