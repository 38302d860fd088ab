"""``/v1/messages`` and ``/v1/messages/count_tokens`` through the official anthropic SDK: create and
stream (the SDK's own accumulator), a tool_use -> tool_result loop, images, system and tool
``cache_control`` and signed thinking blocks reaching a Claude fake byte for byte, the same
conversation on an OpenAI and a Gemini deployment, Anthropic's error envelope and statuses, a
stream breaking after commit, failover, client keys as ``x-api-key`` or Bearer, and count_tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
import pytest

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.dialects.anthropic import estimate_input_tokens
from llm_factory_core.providers import reasoning_memory
from llm_factory_core.testing import json_response, openai_chunks, openai_completion, serve_handler, sse_body
from llm_factory_server._access import presented_key

from ...plugins.claude.fake_claude import Fail, FakeAnthropic, Reply, fake_token_count, sign_thinking
from ...plugins.claude.helpers import ANTHROPIC_KEY, ANTHROPIC_MODEL, bedrock_config, bedrock_fake
from ...plugins.gemini.fake_gemini import VALID_KEY, FakeGemini, Turn
from ..conftest import Serve
from ..helpers import CLIENT_KEY, ServerThread, Upstream, deployment, error_reply, make_factory

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
BMP_SOURCE = {"type": "base64", "media_type": "image/bmp", "data": PNG}
THOUGHT = "The user wants the weather in Paris; I should call get_weather."
CLIENTS: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    reasoning_memory.clear()  # Claude remembers blocks by tool-call id: each test starts empty
    yield
    reasoning_memory.clear()
    while CLIENTS:
        CLIENTS.pop().close()


def sdk(server: ServerThread, key: str = "any-key", **kwargs: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, **kwargs)
    CLIENTS.append(client)
    return client


def _streamed(client: anthropic.Anthropic, **params: Any) -> anthropic.types.Message:
    """The SDK's own accumulation of a stream (``messages.stream``), read to its end."""
    with client.messages.stream(**params) as stream:
        for _ in stream:
            pass
        return stream.get_final_message()


def post(server: ServerThread, body: dict[str, Any], path: str = "/v1/messages", **kw: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=10, **kw)


def events_of(reply: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame."""
    out = []
    for frame in reply.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def tool_call_reply(request: httpx.Request) -> httpx.Response:
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    if json.loads(request.content).get("stream"):
        chunks = openai_chunks([], finish_reason="tool_calls", include_usage=True)
        delta = {"tool_calls": [{"index": 0, **call}]}
        chunks.insert(1, {**chunks[0], "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        return httpx.Response(200, content=sse_body(chunks), headers={"content-type": "text/event-stream"})
    return json_response(openai_completion(None, tool_calls=[call], finish_reason="tool_calls"))


def claude_config(base: str, name: str = "claude-1", model_name: str = "claude") -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "provider": "claude",
            "model_name": model_name,
            "name": name,
            "model": ANTHROPIC_MODEL,
            "mode": "anthropic",
            "api_key": ANTHROPIC_KEY,
            "api_base": base,
        }
    )


@contextmanager
def claude_gateway(serve: Serve, transport: str, *fakes: FakeAnthropic, **settings: Any) -> Iterator[ServerThread]:
    """The gateway over Claude fakes on real sockets, one deployment per fake (first_available)."""
    with contextlib_stack(fakes) as bases:
        configs = [claude_config(base, f"claude-{i}") for i, base in enumerate(bases)]
        factory = LLMFactory(configs, transport=transport, strategy="first_available", num_retries=0, cooldown=0.0)
        yield serve(factory, **settings)


@contextmanager
def contextlib_stack(fakes: tuple[FakeAnthropic, ...]) -> Iterator[list[str]]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield [stack.enter_context(serve_handler(f.handle)) for f in fakes]


# -- OpenAI deployments -----------------------------------------------------------------------------


def test_create_maps_the_request_and_answers_a_message(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    message = sdk(server).messages.create(
        model="gpt-4o",
        max_tokens=100,
        system="Be brief",
        messages=[{"role": "user", "content": "Hi"}],
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        extra_body={"temperature": 0.5},  # dropped from anthropic-python 2.x's signature, still sent by older clients
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.id.startswith("msg_") and message.role == "assistant" and message.type == "message"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hello from upstream"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 9 and message.usage.output_tokens == 12
    sent = upstream.bodies()[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    assert sent["max_tokens"] == 100 and sent["stop"] == ["END"] and sent["temperature"] == 0.5
    assert sent["user"] == "user-7"


def test_stream_has_anthropic_s_event_sequence_and_the_sdk_accumulates_it(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    with sdk(server).messages.stream(
        model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello!"
    assert final.content[0].text == "Hello!" and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert final.usage.input_tokens == 9 and final.usage.output_tokens == 12
    assert upstream.bodies()[-1]["stream_options"] == {"include_usage": True}
    raw = post(
        server, {"model": "gpt-4o", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    kinds = [name for name, _ in events_of(raw)]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events_of(raw))


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_tool_use_loop_on_an_openai_deployment(upstream: Upstream, serve: Serve, stream: bool) -> None:
    upstream.script("a", tool_call_reply)
    server = serve(make_factory(upstream))
    client = sdk(server)
    ask = {"role": "user", "content": "Weather in Paris?"}
    params: dict[str, Any] = {
        "model": "gpt-4o",
        "max_tokens": 200,
        "tools": [WEATHER],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    if stream:
        with client.messages.stream(messages=[ask], **params) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(messages=[ask], **params)
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    assert call.id == "call_weather_1"
    sent = upstream.bodies()[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": WEATHER["description"],
            },
        }
    ]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    history = [b.model_dump(exclude_none=True) for b in first.content]
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}
    second = client.messages.create(
        messages=[ask, {"role": "assistant", "content": history}, {"role": "user", "content": [result]}],
        model="gpt-4o",
        max_tokens=200,
        tools=[WEATHER],
    )
    assert second.content[0].text == "Hello from upstream"  # type: ignore[union-attr]
    messages = upstream.bodies()[-1]["messages"]
    assert messages[1]["role"] == "assistant" and messages[1]["tool_calls"][0]["id"] == "call_weather_1"
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_weather_1", "content": "18C, sunny"}


def test_images_base64_and_url_reach_the_upstream_as_image_parts(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    sdk(server).messages.create(
        model="gpt-4o",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "What are these?"},
                ],
            }
        ],
    )
    parts = upstream.bodies()[-1]["messages"][0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"},
    ]


def test_thinking_and_betas_are_not_sent_to_an_openai_deployment(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    reply = sdk(server).messages.with_raw_response.create(
        model="gpt-4o",
        max_tokens=4000,
        messages=[{"role": "user", "content": "Think"}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        extra_body={"top_k": 5},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert reply.headers["x-llm-factory-ignored"] == "top_k,anthropic-beta"
    sent = upstream.bodies()[-1]
    assert sent["reasoning_effort"] == "low"
    assert not {"thinking", "top_k", "anthropic_beta"} & set(sent)


# -- Claude deployments: nothing lost --------------------------------------------------------------


def test_cache_control_thinking_signatures_and_betas_reach_claude_byte_for_byte(
    serve: Serve, http_transport: str
) -> None:
    fake = FakeAnthropic()
    thinking = {"type": "thinking", "thinking": THOUGHT, "signature": sign_thinking(THOUGHT)}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw"}
    call = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
    fake.script.append(Reply(blocks=[thinking, redacted, call], stop_reason="tool_use"))
    system = [
        {"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Today is Friday."},
    ]
    tools = [{**WEATHER, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    config = {"type": "enabled", "budget_tokens": 1024}
    beta = "interleaved-thinking-2025-05-14"
    with claude_gateway(serve, http_transport, fake) as server:
        client = sdk(server)
        ask = {"role": "user", "content": "Weather in Paris?"}
        first = client.messages.create(
            model="claude",
            max_tokens=2048,
            system=system,
            tools=tools,
            thinking=config,
            messages=[ask],
            extra_headers={"anthropic-beta": beta},
        )
        assert [b.type for b in first.content] == ["thinking", "redacted_thinking", "tool_use"]
        assert first.content[0].model_dump() == thinking and first.content[1].model_dump() == redacted
        assert first.stop_reason == "tool_use" and first.id.startswith("msg_")
        sent = fake.bodies[-1]
        assert sent["system"] == system and sent["thinking"] == config
        assert sent["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        assert fake.requests[-1].headers["anthropic-beta"] == beta and "anthropic_beta" not in sent
        history = [b.model_dump(exclude_none=True) for b in first.content]
        result = {
            "type": "tool_result",
            "tool_use_id": "toolu_01A",
            "content": [{"type": "text", "text": "18C"}],
            "cache_control": {"type": "ephemeral"},
        }
        second = client.messages.create(
            model="claude",
            max_tokens=2048,
            system=system,
            tools=tools,
            thinking=config,
            messages=[ask, {"role": "assistant", "content": history}, {"role": "user", "content": [result]}],
        )
        assert second.content[0].text == "Hello from fake Claude"  # type: ignore[union-attr]
        # The fake checks each signature against its text: the blocks came back unchanged, in order.
        assert fake.bodies[-1]["messages"][1]["content"] == [thinking, redacted, call]
        assert fake.bodies[-1]["messages"][2]["content"] == [result]


def test_a_claude_stream_keeps_thinking_signatures_for_the_sdk_accumulator(serve: Serve, http_transport: str) -> None:
    fake = FakeAnthropic()
    thinking = {"type": "thinking", "thinking": THOUGHT, "signature": sign_thinking(THOUGHT)}
    call = {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Paris"}}
    fake.script.append(Reply(blocks=[thinking, call], stop_reason="tool_use", usage=(30, 9), cache=(100, 20)))
    with claude_gateway(serve, http_transport, fake) as server:
        client = sdk(server)
        ask = {"role": "user", "content": "Weather in Paris?"}
        with client.messages.stream(
            model="claude",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[WEATHER],
            messages=[ask],
        ) as stream:
            kinds = [e.type for e in stream]
            final = stream.get_final_message()
        assert "signature" in kinds and "thinking" in kinds and "input_json" in kinds
        assert final.content[0].model_dump() == thinking
        assert final.content[1].model_dump(exclude_none=True) == call
        assert final.stop_reason == "tool_use"
        usage = final.usage
        assert (usage.input_tokens, usage.output_tokens) == (30, 9)
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 20)
        history = [b.model_dump(exclude_none=True) for b in final.content]
        result = {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "18C"}
        client.messages.create(
            model="claude",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[WEATHER],
            messages=[ask, {"role": "assistant", "content": history}, {"role": "user", "content": [result]}],
        )
        assert fake.bodies[-1]["messages"][1]["content"] == [thinking, call]


def test_a_stop_sequence_from_claude_is_reported_as_such(serve: Serve, http_transport: str) -> None:
    fake = FakeAnthropic()
    fake.script.append(Reply.text("One, two", stop_reason="stop_sequence", extra={"stop_sequence": "three"}))
    with claude_gateway(serve, http_transport, fake) as server:
        message = sdk(server).messages.create(
            model="claude", max_tokens=50, stop_sequences=["three"], messages=[{"role": "user", "content": "Count"}]
        )
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "three"
    assert fake.bodies[-1]["stop_sequences"] == ["three"]


def test_betas_go_in_the_body_on_bedrock_beside_the_deployment_s(serve: Serve, http_transport: str) -> None:
    fake = bedrock_fake()
    with serve_handler(fake.handle) as base:
        config = bedrock_config(api_base=base, anthropic_beta=["context-1m-2025-08-07"])
        server = serve(LLMFactory([config], transport=http_transport, num_retries=0))
        message = sdk(server).messages.create(
            model="claude",
            max_tokens=50,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14,context-1m-2025-08-07"},
        )
    assert message.content[0].text == "Hello from fake Claude"  # type: ignore[union-attr]
    sent = fake.bodies[-1]
    assert sent["anthropic_beta"] == ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]
    assert "anthropic-beta" not in fake.requests[-1].headers


# -- a Gemini deployment --------------------------------------------------------------------------


def test_the_same_tool_conversation_on_gemini(serve: Serve, http_transport: str) -> None:
    fake = FakeGemini()
    fake.add(Turn(calls=[("get_weather", {"city": "Paris"})]), Turn(text="It is 18C and sunny."))
    with fake.serve() as url:
        config = ModelConfig(
            provider="gemini", model_name="gemini", model="gemini-2.5-flash", api_key=VALID_KEY, api_base=url
        )
        server = serve(LLMFactory([config], transport=http_transport, num_retries=0))
        client = sdk(server)
        ask = {"role": "user", "content": "Weather in Paris?"}
        first = client.messages.create(model="gemini", max_tokens=300, tools=[WEATHER], messages=[ask])
        assert first.stop_reason == "tool_use"
        call = first.content[-1]
        assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
        history = [b.model_dump(exclude_none=True) for b in first.content]
        result = {"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}
        with client.messages.stream(
            model="gemini",
            max_tokens=300,
            tools=[WEATHER],
            messages=[ask, {"role": "assistant", "content": history}, {"role": "user", "content": [result]}],
        ) as stream:
            final = stream.get_final_message()
    assert final.content[-1].text == "It is 18C and sunny." and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    contents = fake.requests[-1].body["contents"]
    assert any("functionResponse" in p for c in contents for p in c["parts"])


# -- errors, failover, keys -------------------------------------------------------------------------


def test_errors_use_anthropic_s_envelope_and_the_sdk_s_types(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(429, "slow down", "rate_limit_exceeded", {"retry-after": "7"}))
    server = serve(make_factory(upstream))
    client = sdk(server)
    ask = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.body["type"] == "error" and limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="gpt-4o",
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image", "source": BMP_SOURCE}]}],
        )
    assert "media_type" in bad.value.message and bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    missing_max = post(server, {"model": "gpt-4o", "messages": ask})
    assert missing_max.status_code == 400
    assert missing_max.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required (an integer)"},
    }
    unknown = post(server, {"model": "gpt-4o", "max_tokens": 5, "messages": ask, "temprature": 1})
    assert unknown.status_code == 400 and "temprature" in unknown.json()["error"]["message"]
    assert len(upstream.requests) == 1  # only the rate-limited call went upstream


def test_no_deployment_available_is_overloaded_529(serve: Serve, http_transport: str) -> None:
    fake = FakeAnthropic()
    fake.script.append(Fail("overloaded_error", "Overloaded"))
    with contextlib_stack((fake,)) as bases:
        factory = LLMFactory([claude_config(bases[0])], transport=http_transport, num_retries=0, cooldown=60.0)
        server = serve(factory)
        client = sdk(server)
        ask = [{"role": "user", "content": "Hi"}]
        with pytest.raises(anthropic.APIStatusError):
            client.messages.create(model="claude", max_tokens=10, messages=ask)  # type: ignore[arg-type]
        with pytest.raises(anthropic.OverloadedError) as overloaded:  # the deployment now cools down
            client.messages.create(model="claude", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert int(overloaded.value.response.headers["retry-after"]) >= 1


def test_client_keys_as_x_api_key_or_bearer(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream), api_keys=[CLIENT_KEY])
    ask = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.AuthenticationError) as denied:
        sdk(server, "wrong-key").messages.create(model="gpt-4o", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert denied.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }
    assert sdk(server, CLIENT_KEY).messages.create(model="gpt-4o", max_tokens=10, messages=ask).content  # type: ignore[arg-type]
    bearer = anthropic.Anthropic(base_url=server.url, auth_token=CLIENT_KEY, max_retries=0)
    CLIENTS.append(bearer)
    assert bearer.messages.create(model="gpt-4o", max_tokens=10, messages=ask).content  # type: ignore[arg-type]
    twice = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "gpt-4o", "max_tokens": 10, "messages": ask},
        headers=[("x-api-key", CLIENT_KEY), ("x-api-key", "other")],
        timeout=10,
    )
    assert twice.status_code == 401 and "more than one x-api-key" in twice.json()["error"]["message"]
    # The same reading of keys on every route.
    models = httpx.get(f"{server.url}/v1/models", headers={"x-api-key": CLIENT_KEY}, timeout=10)
    assert models.status_code == 200
    chat = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": ask},
        headers={"x-api-key": CLIENT_KEY},
        timeout=10,
    )
    assert chat.status_code == 200
    assert httpx.get(f"{server.url}/v1/models", headers={"x-api-key": "wrong"}, timeout=10).status_code == 401


def test_a_body_over_the_limit_is_refused_without_reading_it_all(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream), max_body_bytes=1024)
    big = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 2000}]}
    reply = post(server, big)
    assert reply.status_code == 413 and reply.json()["error"]["type"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no content-length: counted while it is read
        yield json.dumps(big).encode()

    streamed = httpx.post(
        f"{server.url}/v1/messages", content=chunked(), headers={"content-type": "application/json"}, timeout=10
    )
    assert streamed.status_code == 413
    assert upstream.requests == []


def test_a_managed_key_s_model_list_applies_on_this_door(upstream: Upstream, serve: Serve) -> None:
    admin = "admin-key-0123456789abcdef"
    factory = make_factory(upstream, deployment("a"), deployment("b", model_name="other"))
    server = serve(factory, admin_key=admin, api_keys=["static-client-key"])
    created = httpx.post(
        f"{server.url}/admin/keys",
        headers={"authorization": f"Bearer {admin}"},
        json={"name": "team-a", "models": ["gpt-4o"]},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    client = sdk(server, created.json()["key"])
    ask = [{"role": "user", "content": "Hi"}]
    assert client.messages.create(model="gpt-4o", max_tokens=10, messages=ask).content  # type: ignore[arg-type]
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.messages.create(model="other", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert refused.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.count_tokens(model="other", messages=ask)  # type: ignore[arg-type]
    assert [r.url.host for r in upstream.requests] == ["a.test"]


def test_the_key_read_for_ownership_is_the_same_x_api_key() -> None:
    assert presented_key([(b"x-api-key", b"k-1")]) == b"k-1"
    assert presented_key([(b"authorization", b"Bearer k-2"), (b"x-api-key", b"k-1")]) == b"k-2"
    assert presented_key([(b"x-api-key", b"k-1"), (b"x-api-key", b"k-3")]) is None


def test_failover_is_that_of_chat(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(500, "boom"))
    server = serve(make_factory(upstream, deployment("a"), deployment("b"), strategy="first_available"))
    message = sdk(server).messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Hello from upstream"  # type: ignore[union-attr]
    assert [r.url.host for r in upstream.requests] == ["a.test", "b.test"]


def test_failover_between_claude_deployments_in_a_stream(serve: Serve, http_transport: str) -> None:
    broken, healthy = FakeAnthropic(), FakeAnthropic()
    broken.script.append(Fail("overloaded_error", "Overloaded"))
    ask = [{"role": "user", "content": "Hi"}]
    with claude_gateway(serve, http_transport, broken, healthy) as server:
        final = _streamed(sdk(server), model="claude", max_tokens=10, messages=ask)
    assert final.content[0].text == "Hello from fake Claude"  # type: ignore[union-attr]
    assert len(healthy.bodies) == 1


def test_a_stream_failing_before_its_first_token_is_a_plain_error(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(401, "bad key", "invalid_api_key"))
    server = serve(make_factory(upstream))
    reply = post(
        server, {"model": "gpt-4o", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert reply.status_code == 502 and reply.headers["content-type"].startswith("application/json")
    assert reply.json()["type"] == "error" and reply.json()["error"]["type"] == "api_error"


def test_a_stream_breaking_after_commit_ends_with_an_error_event(upstream: Upstream, serve: Serve) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        chunks = openai_chunks(["Hel", "lo"], finish_reason=None)
        body = sse_body(chunks)[: -len(b"data: [DONE]\n\n")]
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    upstream.script("a", broken, times=2)
    server = serve(make_factory(upstream))
    ask = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.APIStatusError) as caught:
        _streamed(sdk(server), model="gpt-4o", max_tokens=5, messages=ask)
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    events = events_of(post(server, {"model": "gpt-4o", "max_tokens": 5, "stream": True, "messages": ask}))
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] in ("api_error", "overloaded_error")
    assert "message_stop" not in [name for name, _ in events]
    assert any(d.get("delta", {}).get("text") == "Hel" for _, d in events)


# -- count_tokens ---------------------------------------------------------------------------------


def test_count_tokens_uses_claude_s_own_counter(serve: Serve, http_transport: str) -> None:
    fake = FakeAnthropic()
    with claude_gateway(serve, http_transport, fake) as server:
        reply = sdk(server).messages.with_raw_response.count_tokens(
            model="claude",
            system="Be brief",
            tools=[WEATHER],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        )
    counted = reply.parse()
    assert reply.headers["x-llm-factory-token-count"] == "provider"
    sent = fake.bodies[-1]
    assert fake.requests[-1].url.path == "/v1/messages/count_tokens"
    assert counted.input_tokens == fake_token_count(sent)
    assert "max_tokens" not in sent and sent["model"] == ANTHROPIC_MODEL


def test_count_tokens_elsewhere_is_a_documented_estimate(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    body = {
        "model": "gpt-4o",
        "system": "Be brief",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x" * 400},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            },
        ],
    }
    reply = sdk(server).messages.with_raw_response.count_tokens(**body)
    assert reply.headers["x-llm-factory-token-count"].startswith("estimate")
    assert reply.parse().input_tokens == estimate_input_tokens(body) == 102 + 4 + 1600
    assert upstream.requests == []
