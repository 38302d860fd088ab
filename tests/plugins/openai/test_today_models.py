"""Today's OpenAI / Azure models end to end, over real sockets on both HTTP transports, against the
fake that enforces their rules: gpt-5 / o-series deployments configured with ``max_tokens`` and
``temperature`` work (adapt) or fail with a clear 400 (fail); histories from other providers (long
tool-call ids, their message fields) are accepted; old Azure api-versions get what they know."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core import AllDeploymentsFailedError, BadRequestError, ChatRequest, LLMFactory, ModelConfig
from llm_factory_core.testing import serve_handler
from llm_factory_openai import OpenAIProvider, OpenAISettings

from .fake_openai import FakeOpenAI

KEY = "azure-key-dddddddddddd4444"
PACKED_ID = "call_weather~ts~" + "Cs0BAdHtim" + "x" * 1500


def gpt5(base: str, **extra: Any) -> ModelConfig:
    """The README's YAML example, on a gpt-5 deployment: request defaults gpt-5 refuses as given."""
    options: dict[str, Any] = {
        "model": "gpt-5",
        "max_tokens": 4096,
        "temperature": 0.7,
        "deployment": "prod-reasoner",
        **extra,
    }
    return ModelConfig(
        provider="openai", model_name="smart", api_key=KEY, api_base=base, api_version="2024-10-21", **options
    )


@contextlib.asynccontextmanager
async def factory(fake: FakeOpenAI, transport: str, *configs: Any, **options: Any) -> AsyncIterator[LLMFactory]:
    with serve_handler(fake) as base:
        built = [c(base) if callable(c) else c for c in configs]
        async with LLMFactory(built, transport=transport, **options) as f:
            yield f


def reasoning_fake() -> FakeOpenAI:
    return FakeOpenAI(text="thought it through", deployment_models={"prod-reasoner": "gpt-5"})


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_a_gpt5_deployment_with_max_tokens_and_temperature_works(stream: bool, http_transport: str) -> None:
    fake = reasoning_fake()
    async with factory(fake, http_transport, gpt5) as f:
        if stream:
            chunks = [c async for c in f.stream_async("Hi", model="smart")]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = await f.chat_async("Hi", model="smart")
            text = reply.choices[0].message.content or ""
    assert text == "thought it through"
    (seen,) = fake.requests
    assert seen.deployment == "prod-reasoner"
    assert seen.body["max_completion_tokens"] == 4096
    assert "max_tokens" not in seen.body and "temperature" not in seen.body


@pytest.mark.anyio
async def test_the_callers_max_completion_tokens_wins(http_transport: str) -> None:
    fake = reasoning_fake()
    async with factory(fake, http_transport, gpt5) as f:
        await f.chat_async("Hi", model="smart", max_completion_tokens=500)
        await f.chat_async("Hi", model="smart", max_tokens=300, max_completion_tokens=600)
    assert [r.body["max_completion_tokens"] for r in fake.requests] == [500, 600]
    assert all("max_tokens" not in r.body for r in fake.requests)


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_under_the_fail_policy_the_call_fails_with_a_clear_400(stream: bool, http_transport: str) -> None:
    fake = reasoning_fake()
    config = lambda base: gpt5(base, unsupported_params="fail")  # noqa: E731
    async with factory(fake, http_transport, config) as f:
        with pytest.raises(BadRequestError) as info:
            if stream:
                async for _ in f.stream_async("Hi", model="smart"):
                    pass
            else:
                await f.chat_async("Hi", model="smart")
        status = f.status()
    error = info.value
    assert error.status == 400 and error.param == "max_tokens" and error.code == "unsupported_parameter"
    assert "max_completion_tokens" in str(error) and "unsupported_params: adapt" in str(error)
    assert fake.requests == []  # refused before anything went upstream
    assert all(s.state == "healthy" for s in status)


@pytest.mark.anyio
async def test_fail_policy_names_temperature_when_only_it_is_refused(http_transport: str) -> None:
    fake = reasoning_fake()
    config = lambda base: gpt5(base, unsupported_params="fail", max_tokens=None)  # noqa: E731
    async with factory(fake, http_transport, config) as f:
        with pytest.raises(BadRequestError) as info:
            await f.chat_async("Hi", model="smart")
        reply = await f.chat_async("Hi", model="smart", temperature=1)  # the default is fine
    assert info.value.param == "temperature" and "0.7" in str(info.value)
    assert reply.choices[0].message.content == "thought it through"


@pytest.mark.anyio
@pytest.mark.parametrize(("effort", "kept"), [("none", True), ("low", False), (None, False)])
async def test_gpt51_keeps_temperature_only_without_reasoning(
    effort: str | None, kept: bool, http_transport: str
) -> None:
    fake = FakeOpenAI(deployment_models={"prod-51": "gpt-5.1"})
    config = lambda base: gpt5(base, model="gpt-5.1", deployment="prod-51")  # noqa: E731
    params: dict[str, Any] = {"reasoning_effort": effort} if effort else {}
    async with factory(fake, http_transport, config) as f:
        await f.chat_async("Hi", model="smart", **params)
    assert ("temperature" in fake.requests[0].body) is kept


@pytest.mark.anyio
async def test_the_readme_yaml_example_works_on_a_gpt5_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_transport: str
) -> None:
    fake = reasoning_fake()
    with serve_handler(fake) as base:
        (tmp_path / "config.yaml").write_text(
            "providers:\n"
            "  - provider: openai\n"
            "    model_name: gpt-5\n"
            '    api_key: "${AZURE_OPENAI_API_KEY}"\n'
            '    api_base: "${AZURE_OPENAI_ENDPOINT}"\n'
            '    api_version: "2024-10-21"\n'
            "    deployment: prod-reasoner\n"
            "    max_tokens: 4096\n"
            "    temperature: 0.7\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", base)
        async with LLMFactory.create_from_config(tmp_path / "config.yaml", transport=http_transport) as f:
            reply = await f.chat_async("Hi")
    assert reply.choices[0].message.content == "thought it through"
    assert fake.requests[0].body["max_completion_tokens"] == 4096


# -- histories from other providers -----------------------------------------------------------------


def foreign_history(call_id: str = PACKED_ID) -> list[dict[str, Any]]:
    """A tool loop started on Gemini (packed signature id, Google's extra_content) and Claude
    (thinking_blocks, reasoning_content, cache_control), continued here."""
    return [
        {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "I should call the tool.",
            "thinking_blocks": [{"type": "thinking", "thinking": "I should call the tool.", "signature": "EqQB"}],
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "extra_content": {"google": {"thought_signature": "Cs0BAdHtim"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["openai", "azure"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_foreign_tool_history_is_accepted(flavour: str, stream: bool, http_transport: str) -> None:
    fake = FakeOpenAI(text="It is sunny.")
    extra = {"api_version": "2024-10-21"} if flavour == "azure" else {}
    config = lambda base: ModelConfig(provider="openai", model_name="gpt-4o", api_key=KEY, api_base=base, **extra)  # noqa: E731
    history = foreign_history()
    async with factory(fake, http_transport, config) as f:
        if stream:
            chunks = [c async for c in f.stream_async(history)]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It is sunny."
        else:
            reply = await f.chat_async(history)
            assert reply.choices[0].message.content == "It is sunny."
    sent = fake.requests[0].body["messages"]
    (call,) = sent[2]["tool_calls"]
    assert len(call["id"]) <= 40 and sent[3]["tool_call_id"] == call["id"]
    assert set(sent[2]) == {"role", "content", "tool_calls"} and set(call) == {"id", "type", "function"}
    assert sent[0]["content"] == [{"type": "text", "text": "Be brief."}]
    assert history == foreign_history()  # the caller's messages are untouched


@pytest.mark.anyio
async def test_with_stripping_off_the_fields_reach_a_server_that_reads_them(http_transport: str) -> None:
    lenient = FakeOpenAI(strict_messages=False)  # a vLLM-style server reading reasoning_content
    config = lambda base: ModelConfig(  # noqa: E731
        provider="openai", model_name="local", api_base=base, strip_foreign_fields=False
    )
    lenient.require_key = False
    async with factory(lenient, http_transport, config) as f:
        await f.chat_async(foreign_history("call_1"))
    assert lenient.requests[0].body["messages"][2]["reasoning_content"] == "I should call the tool."


@pytest.mark.anyio
async def test_the_strict_fake_refuses_foreign_fields_when_stripping_is_off(http_transport: str) -> None:
    # The other side of the switch: what OpenAI answers when the fields get through.
    fake = FakeOpenAI()
    config = lambda base: ModelConfig(  # noqa: E731
        provider="openai", model_name="gpt-4o", api_key=KEY, api_base=base, strip_foreign_fields=False
    )
    async with factory(fake, http_transport, config) as f:
        with pytest.raises(BadRequestError, match=r"Unknown parameter: 'messages\[0\]\.content\[0\]\.cache_control'"):
            await f.chat_async(foreign_history("call_1"))


# -- old Azure api-versions -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_old_api_version_gets_the_fields_it_knows(
    http_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeOpenAI(text="old but fine")
    config = lambda base: ModelConfig(  # noqa: E731
        provider="openai", model_name="gpt-4o", api_key=KEY, api_base=base, api_version="2024-06-01"
    )
    async with factory(fake, http_transport, config) as f:
        with caplog.at_level(logging.WARNING, logger="llm_factory_openai"):
            chunks = [
                c async for c in f.stream_async("Hi", stream_options={"include_usage": True}, max_completion_tokens=100)
            ]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "old but fine"
    body = fake.requests[0].body
    assert "stream_options" not in body and body["max_tokens"] == 100 and "max_completion_tokens" not in body
    assert "predates stream_options" in caplog.text


@pytest.mark.anyio
async def test_a_current_api_version_keeps_stream_options(http_transport: str) -> None:
    fake = FakeOpenAI()
    config = lambda base: ModelConfig(  # noqa: E731
        provider="openai", model_name="gpt-4o", api_key=KEY, api_base=base, api_version="2024-10-21"
    )
    async with factory(fake, http_transport, config) as f:
        chunks = [c async for c in f.stream_async("Hi", stream_options={"include_usage": True}, max_tokens=50)]
    assert chunks[-1].usage is not None
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert fake.requests[0].body["max_completion_tokens"] == 50 and "max_tokens" not in fake.requests[0].body


@pytest.mark.anyio
async def test_a_compatible_server_gets_max_tokens_as_sent(http_transport: str) -> None:
    fake = FakeOpenAI(require_key=False)  # vLLM / Ollama / LM Studio know max_tokens
    config = lambda base: ModelConfig(provider="openai", model_name="llama", model="llama3.1:8b", api_base=base)  # noqa: E731
    async with factory(fake, http_transport, config) as f:
        await f.chat_async("Hi", max_tokens=64, temperature=0.2)
    body = fake.requests[0].body
    assert (body["max_tokens"], body["temperature"]) == (64, 0.2) and "max_completion_tokens" not in body


@pytest.mark.anyio
async def test_a_reasoning_model_on_a_compatible_server_still_gets_its_rules(http_transport: str) -> None:
    fake = FakeOpenAI(require_key=False)  # a gateway in front of o3 speaks OpenAI's rules
    config = lambda base: ModelConfig(provider="openai", model_name="o3", api_base=base, max_tokens=256)  # noqa: E731
    async with factory(fake, http_transport, config) as f:
        await f.chat_async("Hi", temperature=0.2, presence_penalty=0.5, top_p=1)
    body = fake.requests[0].body
    assert body["max_completion_tokens"] == 256 and body["top_p"] == 1
    assert not {"max_tokens", "temperature", "presence_penalty"} & set(body)


@pytest.mark.anyio
async def test_everything_failing_is_reported_when_the_rule_is_bypassed(http_transport: str) -> None:
    # A deployment whose ``model`` does not name its family (only the deployment does) gets no
    # rule, as documented: on Azure the plugin still sends max_completion_tokens, so only the
    # refused temperature reaches the model, and the 400 says what to set.
    fake = FakeOpenAI(deployment_models={"prod-reasoner": "gpt-5"})
    config = lambda base: gpt5(base, model="prod-reasoner", deployment=None, max_tokens=None)  # noqa: E731
    async with factory(fake, http_transport, config, num_retries=0) as f:
        with pytest.raises((BadRequestError, AllDeploymentsFailedError)) as info:
            await f.chat_async("Hi", model="smart")
    assert "Unsupported value: 'temperature' does not support 0.7" in str(info.value)


def test_a_twenty_thousand_message_history_encodes_in_linear_time() -> None:
    # Security issue 20: the plugin's whole body encoding (ids, foreign fields, token field) stays
    # linear on long histories: alternating turns and same-role runs, every message rewritten.
    settings = OpenAISettings(
        model="gpt-4o", api_key=KEY, api_base="https://res.openai.azure.com", api_version="2024-10-21"
    )
    provider = OpenAIProvider(settings, client=httpx.AsyncClient(), name="openai/gpt-4o#1")
    messages: list[dict[str, Any]] = []
    for i in range(5_000):
        call_id = f"{PACKED_ID}{i}"
        messages += [
            {"role": "user", "content": f"q{i}"},
            {"role": "user", "content": [{"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}]},
            {
                "role": "assistant",
                "content": None,
                "thinking_blocks": [],
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "ok"},
        ]
    request = ChatRequest(messages=messages, max_tokens=100)
    started = time.perf_counter()
    body = provider.build_body(request, stream=False)
    assert time.perf_counter() - started < 2.0
    sent = body["messages"]
    assert len(sent) == 20_000 and body["max_completion_tokens"] == 100
    assert all(len(m["tool_calls"][0]["id"]) <= 40 and "thinking_blocks" not in m for m in sent[2::4])
    assert [m["tool_call_id"] for m in sent[3::4]] == [m["tool_calls"][0]["id"] for m in sent[2::4]]
    assert len({m["tool_call_id"] for m in sent[3::4]}) == 5_000  # distinct ids stay distinct
