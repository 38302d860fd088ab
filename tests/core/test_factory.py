"""The library API: sync and async, inside running loops, streams, pooling, closing, status."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from llm_factory_core import (
    ChatCompletion,
    InvalidRequestError,
    LLMFactory,
    LLMFactoryError,
    ModelConfig,
    ModelNotFoundError,
    ProviderType,
)
from llm_factory_core.testing import (
    MockUpstream,
    json_response,
    openai_chunks,
    openai_completion,
    sse_response,
)

from .helpers import Hosts, cfg, stream_reply, text_reply


def test_direct_configuration_sync_chat() -> None:
    upstream = MockUpstream(lambda r: json_response(openai_completion("你好！我能帮你什么忙？")))
    config = ModelConfig(
        provider=ProviderType.OPENAI,
        model_name="gpt-4o",
        api_key="your-api-key-0000",
        api_base="https://res.openai.azure.com",
        api_version="2024-02-15-preview",
    )
    with LLMFactory(config, transport=upstream.transport) as factory:
        response = factory.chat("你好，世界！")
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == "你好！我能帮你什么忙？"
    request = upstream.requests[0]
    assert request.url.path == "/openai/deployments/gpt-4o/chat/completions"
    assert request.url.params["api-version"] == "2024-02-15-preview"
    assert request.headers["api-key"] == "your-api-key-0000"
    assert upstream.bodies()[0]["messages"] == [{"role": "user", "content": "你好，世界！"}]


def test_without_model_the_first_configured_name_is_used() -> None:
    hosts = Hosts(a=text_reply("a"), b=text_reply("b"))
    with hosts.factory([cfg("a", model_name="first"), cfg("b", model_name="second")]) as f:
        f.chat("hi")
        f.chat("hi", model="second")
    assert hosts.hosts == ["a", "b"]


def test_openai_parameters_and_extra_body_pass_through() -> None:
    upstream = MockUpstream(lambda r: json_response(openai_completion("ok")))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with LLMFactory(cfg("a"), transport=upstream.transport) as f:
        f.chat(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            temperature=0.2,
            max_tokens=5,
            top_p=0.9,
            stop=["\n"],
            n=1,
            seed=7,
            tools=tools,
            tool_choice="auto",
            response_format={"type": "json_object"},
            user="u1",
            extra_body={"vendor_flag": True},
            logit_bias={"50256": -100},
        )
    body = upstream.bodies()[0]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    for key, value in {
        "temperature": 0.2,
        "max_tokens": 5,
        "top_p": 0.9,
        "stop": ["\n"],
        "n": 1,
        "seed": 7,
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "user": "u1",
        "vendor_flag": True,
        "logit_bias": {"50256": -100},
    }.items():
        assert body[key] == value, key
    assert "load_balance_strategy" not in body and "extra_body" not in body and "stream" not in body


def test_invalid_parameters_are_clear_errors() -> None:
    with LLMFactory(cfg("a"), transport=MockUpstream().transport) as f:
        with pytest.raises(InvalidRequestError, match="temperature"):
            f.chat("hi", temperature=5)
        with pytest.raises(InvalidRequestError, match="messages"):
            f.chat([])
        with pytest.raises(InvalidRequestError, match="role"):
            f.chat([{"role": "wizard", "content": "x"}])
        with pytest.raises(ModelNotFoundError, match="Configured models: gpt-4o"):
            f.chat("hi", model="gpt-5")


def test_sync_calls_work_inside_a_running_event_loop() -> None:
    hosts = Hosts(a=text_reply("from inside a loop"))
    factory = hosts.factory([cfg("a")])

    async def notebook_cell() -> str:
        # A Jupyter cell / sync FastAPI endpoint: sync code while a loop is running.
        return factory.chat("hi").choices[0].message.content or ""

    try:
        assert asyncio.run(notebook_cell()) == "from inside a loop"
    finally:
        factory.close()


def test_sync_calls_share_one_pool_and_one_loop_thread() -> None:
    clients: set[int] = set()

    def reply(request: httpx.Request) -> httpx.Response:
        clients.add(threading.get_ident())
        return json_response(openai_completion("ok"))

    upstream = MockUpstream(reply)
    factory = LLMFactory(cfg("a"), transport=upstream.transport)
    try:
        for _ in range(3):
            factory.chat("hi")
        runtimes = list(factory._runtimes.values())
        assert len(runtimes) == 1, "one client (one connection pool) for every sync call"
        assert len(clients) == 1
        assert threading.get_ident() not in clients
    finally:
        factory.close()
    assert not any(t.name == "llm-factory-loop" and t.is_alive() for t in threading.enumerate())


def test_sync_stream_iterates_and_closes() -> None:
    hosts = Hosts(a=stream_reply(["a", "b", "c"]))
    with hosts.factory([cfg("a")]) as f:
        with f.stream("hi") as stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "abc"
        # abandoning early releases the upstream too
        stream = f.stream("hi")
        next(stream)
        stream.close()
        assert f.status()[0].in_flight == 0


@pytest.mark.anyio
async def test_readme_streaming_loop_works_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    upstream = MockUpstream(lambda r: sse_response(openai_chunks(["从前", "有座山"])))
    async with LLMFactory(cfg("a"), transport=upstream.transport) as factory:
        async for chunk in factory.stream_async("写一个故事"):
            if chunk.choices and chunk.choices[0].get("delta", {}).get("content"):
                print(chunk.choices[0]["delta"]["content"], end="", flush=True)
    assert capsys.readouterr().out == "从前有座山"
    assert upstream.bodies()[0]["stream"] is True


@pytest.mark.anyio
async def test_include_usage_reaches_the_caller() -> None:
    upstream = MockUpstream(lambda r: sse_response(openai_chunks(["x"], include_usage=True, usage=(3, 4))))
    async with LLMFactory(cfg("a"), transport=upstream.transport) as f:
        chunks = [c async for c in f.stream_async("hi", stream_options={"include_usage": True})]
    assert upstream.bodies()[0]["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7


def test_closed_factory_refuses_calls() -> None:
    f = LLMFactory(cfg("a"), transport=MockUpstream().transport)
    f.close()
    with pytest.raises(LLMFactoryError, match="closed"):
        f.chat("hi")


def test_status_reports_every_deployment_with_masked_keys() -> None:
    hosts = Hosts(a=text_reply("a"), b=text_reply("b"))
    with hosts.factory([cfg("a"), cfg("b", model_name="other", weight=2)]) as f:
        f.chat("hi")
        status = [s.model_dump() for s in f.status()]
    assert [s["state"] for s in status] == ["healthy", "healthy"]
    first = status[0]
    assert first["provider"] == "openai" and first["model_name"] == "gpt-4o"
    assert first["api_key"] == "****000a"
    assert first["successes"] == 1 and first["in_flight"] == 0 and first["avg_latency_ms"] is not None
    assert status[1]["weight"] == 2
    assert "secret" not in repr(status) and "secret" not in repr(f.deployments)


def test_models_lists_names_with_owner() -> None:
    with LLMFactory([cfg("a"), cfg("b"), cfg("c", model_name="mini")]) as f:
        assert f.models() == [{"id": "gpt-4o", "owned_by": "openai"}, {"id": "mini", "owned_by": "openai"}]


def test_constructor_rejects_unknown_router_options_and_bad_configs() -> None:
    with pytest.raises(LLMFactoryError, match="strategi"):
        LLMFactory([cfg("a")], strategi="random")
    with pytest.raises(LLMFactoryError, match="expected ModelConfig"):
        LLMFactory([{"provider": "openai"}])  # type: ignore[list-item]


def test_model_config_repr_masks_the_key() -> None:
    config = cfg("a")
    assert "secret" not in repr(config) and "secret" not in str(config.model_dump())
