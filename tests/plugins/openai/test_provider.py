"""The openai plugin through LLMFactory against the validated fake: URL forms, streaming with Azure's
extra chunks, tools, images, response_format, and the failover rules for its error replies. Requests,
streams, tools and errors run over real sockets on both HTTP transports (``http_transport``); the
URL-form tests read the URL each configuration builds, on ``httpx.MockTransport``."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    ChatCompletionChunk,
    ConfigurationError,
    ContentFilterError,
    LLMFactory,
    ModelConfig,
    StreamInterruptedError,
)
from llm_factory_core.testing import serve_handler

from .fake_openai import TOOL_CALLS, FakeOpenAI

AZURE = "https://res-east.openai.azure.com"
KEY1 = "azure-key-aaaaaaaaaaaa1111"
KEY2 = "azure-key-bbbbbbbbbbbb2222"


def azure(model_name: str = "gpt-4o", key: str = KEY1, **extra: Any) -> ModelConfig:
    return ModelConfig(
        provider="openai",
        model_name=model_name,
        api_key=key,
        api_base=AZURE,
        api_version="2024-10-21",
        **extra,
    )


@contextlib.asynccontextmanager
async def served(
    fake: FakeOpenAI, configs: ModelConfig | list[ModelConfig], transport: str, **options: Any
) -> AsyncIterator[LLMFactory]:
    """A factory whose deployments call ``fake`` over a real socket on 127.0.0.1, on ``transport``."""
    with serve_handler(fake) as base:
        listed = configs if isinstance(configs, list) else [configs]
        moved = [c.model_copy(update={"api_base": base}) for c in listed]
        async with LLMFactory(moved, transport=transport, **options) as factory:
            yield factory


async def collect(factory: LLMFactory, prompt: Any = "Hi", **params: Any) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in factory.stream_async(prompt, **params)]


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- URL forms and auth ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("config", "route", "path", "query", "auth"),
    [
        (
            {"api_key": KEY1, "api_base": AZURE, "api_version": "2024-10-21"},
            "azure",
            "/openai/deployments/gpt-4o/chat/completions",
            {"api-version": "2024-10-21"},
            ("api-key", KEY1),
        ),
        (  # an endpoint copied with its /openai suffix still works
            {"api_key": KEY1, "api_base": AZURE + "/openai", "api_version": "2025-01-01-preview"},
            "azure",
            "/openai/deployments/gpt-4o/chat/completions",
            {"api-version": "2025-01-01-preview"},
            ("api-key", KEY1),
        ),
        (
            {"api_key": KEY1, "api_base": AZURE + "/openai/v1"},
            "azure-v1",
            "/openai/v1/chat/completions",
            {},
            ("authorization", KEY1),
        ),
        (
            {"api_key": "sk-proj-openai-000000001"},
            "openai",
            "/v1/chat/completions",
            {},
            ("authorization", "sk-proj-openai-000000001"),
        ),
        (  # Ollama: no key at all
            {"api_base": "http://127.0.0.1:11434/v1"},
            "openai",
            "/v1/chat/completions",
            {},
            (None, None),
        ),
    ],
    ids=["azure-classic", "azure-endpoint-with-openai", "azure-v1", "openai", "ollama-no-key"],
)
async def test_url_forms(
    config: dict[str, Any], route: str, path: str, query: dict[str, str], auth: tuple[str | None, str | None]
) -> None:
    fake = FakeOpenAI(text="routed", require_key=auth[0] is not None)
    async with LLMFactory(ModelConfig(provider="openai", model_name="gpt-4o", **config), transport=fake.transport) as f:
        reply = await f.chat_async("Hi")
    assert reply.choices[0].message.content == "routed"
    (seen,) = fake.requests
    assert (seen.route, seen.path, seen.query, (seen.auth_header, seen.key)) == (route, path, query, auth)
    assert "authorization" not in seen.headers or seen.auth_header == "authorization"
    assert seen.body["model"] == "gpt-4o"
    if auth[0] is None:
        assert seen.host == "127.0.0.1" and seen.url.port == 11434


@pytest.mark.anyio
async def test_deployment_name_differs_from_model_name() -> None:
    fake = FakeOpenAI()
    config = azure("smart", model="gpt-4o", deployment="prod-gpt4o-eastus")
    async with LLMFactory(config, transport=fake.transport) as f:
        await f.chat_async("Hi", model="smart")
    (seen,) = fake.requests
    assert seen.deployment == "prod-gpt4o-eastus"
    assert seen.body["model"] == "gpt-4o"


@pytest.mark.anyio
@pytest.mark.parametrize(("deployment", "expected"), [(None, "portal-dep"), ("explicit-dep", "explicit-dep")])
async def test_a_pasted_deployment_url_is_understood(deployment: str | None, expected: str) -> None:
    fake = FakeOpenAI()
    extra = {"deployment": deployment} if deployment else {}
    config = ModelConfig(
        provider="openai",
        model_name="gpt-4o",
        api_key=KEY1,
        api_base=AZURE + "/openai/deployments/portal-dep",
        api_version="2024-10-21",
        **extra,
    )
    async with LLMFactory(config, transport=fake.transport) as f:
        await f.chat_async("Hi")
    (seen,) = fake.requests
    assert seen.path == f"/openai/deployments/{expected}/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}


def test_deployment_and_api_version_from_the_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("OPENAI_", "LLM_FACTORY_"))]:
        monkeypatch.delenv(name)  # real variables would win over the file
    env = tmp_path / ".env"
    env.write_text(
        f"OPENAI_API_KEY={KEY1}\nOPENAI_API_BASE={AZURE}\nOPENAI_MODEL=gpt-4o\n"
        "OPENAI_API_VERSION=2024-10-21\nOPENAI_DEPLOYMENT=env-dep\n",
        encoding="utf-8",
    )
    fake = FakeOpenAI()
    with LLMFactory.create(env_file=env, transport=fake.transport) as f:
        f.chat("Hi")
    (seen,) = fake.requests
    assert (seen.deployment, seen.query, seen.key) == ("env-dep", {"api-version": "2024-10-21"}, KEY1)


@pytest.mark.anyio
async def test_azure_v1_sends_the_deployment_as_model() -> None:
    fake = FakeOpenAI()
    config = ModelConfig(
        provider="openai",
        model_name="gpt-4o",
        api_key=KEY1,
        api_base=AZURE + "/openai/v1",
        deployment="prod-4o",
    )
    async with LLMFactory(config, transport=fake.transport) as f:
        await f.chat_async("Hi")
    assert fake.requests[0].body["model"] == "prod-4o"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"api_key": KEY1, "api_base": AZURE}, "api_version"),
        ({"api_base": AZURE, "api_version": "2024-10-21"}, "api_key"),
        ({}, "api_key"),
    ],
)
def test_incomplete_configuration_is_a_clear_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LLMFactory(ModelConfig(provider="openai", model_name="gpt-4o", **config))


# -- request body ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_images_and_response_format_pass_through_unchanged(http_transport: str) -> None:
    fake = FakeOpenAI(text='{"animal": "cat"}')
    messages = [
        {"role": "system", "content": "Answer in JSON."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
    ]
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "animal",
            "schema": {"type": "object", "properties": {"animal": {"type": "string"}}},
        },
    }
    async with served(fake, azure(), http_transport) as f:
        reply = await f.chat_async(messages, response_format=schema, temperature=0.1)
    assert json.loads(reply.choices[0].message.content or "") == {"animal": "cat"}
    body = fake.requests[0].body
    assert body["messages"] == messages
    assert body["response_format"] == schema
    assert body["temperature"] == 0.1
    assert "load_balance_strategy" not in body and "extra_body" not in body


@pytest.mark.anyio
async def test_tool_calls_in_a_completion(http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("tools")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    async with served(fake, azure(), http_transport) as f:
        reply = await f.chat_async("Weather and time in Paris?", tools=tools, tool_choice="auto")
    assert fake.requests[0].body["tools"] == tools
    assert reply.choices[0].finish_reason == "tool_calls"
    calls = reply.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        (c["id"], c["name"], c["arguments"]) for c in TOOL_CALLS
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["azure", "openai"])
async def test_tool_call_deltas_assemble(flavour: str, http_transport: str) -> None:
    fake = FakeOpenAI(async_filter=True)
    fake.push("tools")
    config = azure() if flavour == "azure" else ModelConfig(provider="openai", model_name="gpt-4o", api_key=KEY1)
    async with served(fake, config, http_transport) as f:
        chunks = await collect(f, "Weather?", tools=[{"type": "function", "function": {"name": "get_weather"}}])
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert [calls[i] for i in sorted(calls)] == TOOL_CALLS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# -- streaming ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("include_usage", [True, False])
async def test_azure_stream_drops_filter_chunks_and_keeps_identity(include_usage: bool, http_transport: str) -> None:
    fake = FakeOpenAI(text="The quick brown fox jumps.", async_filter=True)
    params = {"stream_options": {"include_usage": True}} if include_usage else {}
    async with served(fake, azure(), http_transport) as f:
        chunks = await collect(f, "Tell me", **params)
    assert text_of(chunks) == "The quick brown fox jumps."
    assert fake.requests[0].body.get("stream_options") == params.get("stream_options")
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and "" not in ids
    assert {c.created for c in chunks} != {0} and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model for c in chunks)
    for chunk in chunks:
        wire = json.dumps(chunk.to_dict())
        assert "content_filter" not in wire and "prompt_filter_results" not in wire
        assert all(choice.delta is not None for choice in chunk.choices)
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 21  # type: ignore[union-attr]
    else:
        assert usage_chunks == []


@pytest.mark.anyio
async def test_stream_blocked_by_the_async_filter_ends_with_content_filter(http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("stream_filtered", text="Some protected lyrics")
    async with served(fake, azure(), http_transport) as f:
        chunks = await collect(f)
    assert text_of(chunks) == "Some protected lyrics"
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert all(c.id and c.created for c in chunks)


@pytest.mark.anyio
async def test_error_event_after_content_interrupts_the_stream(http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("stream_error", text="Partial answer")
    received = []
    async with served(fake, [azure(), azure(key=KEY2)], http_transport) as f:
        with pytest.raises(StreamInterruptedError) as info:
            async for chunk in f.stream_async("Hi", load_balance_strategy="first_available"):
                received.append(chunk)
    assert text_of(received) == "Partial answer"
    assert "server had an error" in str(info.value)
    assert len(fake.requests) == 1  # committed: no silent switch to another deployment


@pytest.mark.anyio
async def test_error_event_before_content_fails_over(http_transport: str) -> None:
    fake = FakeOpenAI(text="from the second key")
    fake.push("stream_error", pieces=[])
    async with served(fake, [azure(), azure(key=KEY2)], http_transport, strategy="first_available") as f:
        chunks = await collect(f)
        status = _status(f)
    assert text_of(chunks) == "from the second key"
    assert [r.key for r in fake.requests] == [KEY1, KEY2]
    assert status["****1111"].state == "cooldown"


def test_sync_stream_and_chat() -> None:
    fake = FakeOpenAI(text="sync hello")
    with LLMFactory(azure(), transport=fake.transport) as f:
        assert f.chat("Hi").choices[0].message.content == "sync hello"
        with f.stream("Hi") as stream:
            assert text_of(list(stream)) == "sync hello"


# -- errors and failover --------------------------------------------------------------------------


def _status(factory: LLMFactory) -> dict[str, Any]:
    return {s.api_key: s for s in factory.status()}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry_after": "30"}, 30.0), ({"retry_after": "38", "retry_after_ms": "37500"}, 37.5)],
    ids=["retry-after", "retry-after-ms"],
)
@pytest.mark.parametrize("flavour", ["azure", "openai"])
async def test_rate_limit_cools_down_for_the_hint(
    flavour: str, headers: dict[str, str], seconds: float, http_transport: str
) -> None:
    fake = FakeOpenAI(text="from the second key")
    fake.push("rate_limit", **headers)
    if flavour == "azure":
        configs = [azure(), azure(key=KEY2)]
    else:
        configs = [ModelConfig(provider="openai", model_name="gpt-4o", api_key=k) for k in (KEY1, KEY2)]
    async with served(fake, configs, http_transport, strategy="first_available") as f:
        before = time.time()
        reply = await f.chat_async("Hi")
        after = time.time()
        status = _status(f)
    assert reply.choices[0].message.content == "from the second key"
    assert [r.key for r in fake.requests] == [KEY1, KEY2]
    first = status["****1111"]
    assert first.state == "cooldown"
    assert first.until is not None and before + seconds - 0.05 <= first.until <= after + seconds + 0.05
    assert first.last_error and first.last_error.startswith("RateLimitError")
    assert status["****2222"].state == "healthy"


@pytest.mark.anyio
async def test_azure_rate_limit_without_headers_uses_the_message_hint(http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("rate_limit", retry_after="24", hint_only=True)
    async with served(fake, [azure(), azure(key=KEY2)], http_transport, strategy="first_available") as f:
        before = time.time()
        await f.chat_async("Hi")
        after = time.time()
        first = _status(f)["****1111"]
    assert first.state == "cooldown"
    assert first.until is not None and before + 24 - 0.05 <= first.until <= after + 24 + 0.05


@pytest.mark.anyio
async def test_invalid_key_is_disabled_and_the_next_key_answers(http_transport: str) -> None:
    fake = FakeOpenAI(text="good key", invalid_keys={KEY1})
    async with served(fake, [azure(), azure(key=KEY2)], http_transport, strategy="first_available") as f:
        reply = await f.chat_async("Hi")
        second = await f.chat_async("Hi again")
        status = _status(f)
    assert reply.choices[0].message.content == second.choices[0].message.content == "good key"
    assert [r.key for r in fake.requests] == [KEY1, KEY2, KEY2]  # the bad key is not tried again
    bad = status["****1111"]
    assert bad.state == "disabled"
    assert bad.reason and bad.reason.startswith("AuthenticationError") and "Access denied" in bad.reason
    assert bad.until is not None and bad.until > time.time() + 3000
    assert KEY1 not in repr(f.status()) and KEY1 not in (bad.reason or "")


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_content_filter_fails_at_once(stream: bool, http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("content_filter", times=2)
    async with served(fake, [azure(), azure(key=KEY2)], http_transport) as f:
        with pytest.raises(ContentFilterError) as info:
            if stream:
                await collect(f, "something hateful")
            else:
                await f.chat_async("something hateful")
        status = _status(f)
    assert len(fake.requests) == 1
    assert info.value.status == 400 and info.value.code == "content_filter"
    assert all(s.state == "healthy" for s in status.values())


@pytest.mark.anyio
async def test_context_length_goes_to_the_fallback_model(http_transport: str) -> None:
    fake = FakeOpenAI(text="the big model answered")
    fake.push("context_length")
    configs = [azure(), azure(key=KEY2), azure("gpt-4o-32k")]
    async with served(fake, configs, http_transport, fallbacks={"gpt-4o": ["gpt-4o-32k"]}) as f:
        reply = await f.chat_async("a very long prompt " * 10)
        status = _status(f)
    assert reply.choices[0].message.content == "the big model answered"
    assert [r.deployment for r in fake.requests] == ["gpt-4o", "gpt-4o-32k"]  # the group's other key skipped
    assert reply.deployment is not None and "gpt-4o-32k" in reply.deployment
    assert all(s.state == "healthy" for s in status.values())


@pytest.mark.anyio
async def test_server_error_fails_over_and_cools_down(http_transport: str) -> None:
    fake = FakeOpenAI(text="second")
    fake.push("server_error")
    async with served(fake, [azure(), azure(key=KEY2)], http_transport, strategy="first_available") as f:
        reply = await f.chat_async("Hi")
        status = _status(f)
    assert reply.choices[0].message.content == "second"
    assert status["****1111"].state == "cooldown"


@pytest.mark.anyio
async def test_every_key_rate_limited_reports_each_attempt_without_secrets(http_transport: str) -> None:
    fake = FakeOpenAI()
    fake.push("rate_limit", times=2, retry_after="60")
    async with served(fake, [azure(), azure(key=KEY2)], http_transport) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    assert len(fake.requests) == 2
    assert len(info.value.attempts) == 2
    text = str(info.value) + repr(info.value.attempts)
    assert KEY1 not in text and KEY2 not in text
