"""``/v1/responses`` through the official openai SDK: text, streams with the semantic event
sequence, a function-tool loop over ``previous_response_id``, structured output, reasoning effort,
stored responses per client key, failover, and failures before and after a stream commits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llm_factory_core.testing import json_response, openai_chunks, openai_completion, sse_body

from ..conftest import Serve
from ..helpers import CLIENT_KEY, Upstream, client, deployment, error_reply, make_factory

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(autouse=True)
def responses_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "responses.sqlite3"
    monkeypatch.setenv("LLM_FACTORY_RESPONSES_DB", str(path))
    return path


def tool_call_reply(request: httpx.Request) -> httpx.Response:
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    body = json.loads(request.content)
    if body.get("stream"):
        chunks = openai_chunks([], finish_reason="tool_calls", include_usage=True)
        delta = {"tool_calls": [{"index": 0, **call}]}
        chunks.insert(1, {**chunks[0], "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        return httpx.Response(200, content=sse_body(chunks), headers={"content-type": "text/event-stream"})
    return json_response(openai_completion(None, tool_calls=[call], finish_reason="tool_calls"))


def test_text_reply(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    response = client(server).responses.create(
        model="gpt-4o", input="Hi", instructions="Be brief", max_output_tokens=50
    )
    assert response.output_text == "Hello from upstream"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage is not None and response.usage.input_tokens == 9 and response.usage.output_tokens == 12
    sent = upstream.bodies()[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent


def test_stream_event_sequence(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    sdk = client(server)
    events = list(sdk.responses.create(model="gpt-4o", input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Hello!"
    final = events[-1].response
    assert final.output_text == "Hello!" and final.usage is not None and final.usage.total_tokens == 21
    stored = sdk.responses.retrieve(final.id)  # the same object as the stream's final one
    assert stored.model_dump() == final.model_dump()


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_a_function_tool_loop_over_previous_response_id(upstream: Upstream, serve: Serve, stream: bool) -> None:
    upstream.script("a", tool_call_reply)
    server = serve(make_factory(upstream))
    sdk = client(server)
    if stream:
        events = list(sdk.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER], stream=True))
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
        first = events[-1].response
    else:
        first = sdk.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == "call_weather_1"
    second = sdk.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Hello from upstream"
    messages = upstream.bodies()[-1]["messages"]
    assert messages[0] == {"role": "user", "content": "Weather in Paris?"}
    assert messages[1]["role"] == "assistant" and messages[1]["tool_calls"][0]["id"] == "call_weather_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_weather_1", "content": "18C, sunny"}
    assert upstream.bodies()[-1]["tools"][0]["function"]["name"] == "get_weather"


def test_structured_output_and_reasoning_effort_reach_the_upstream(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    client(server).responses.create(
        model="gpt-4o",
        input="Give a",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
    )
    sent = upstream.bodies()[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }
    assert sent["reasoning_effort"] == "low"


def test_stored_responses_belong_to_their_key(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream), api_keys=[CLIENT_KEY, "other-client-key-0099"])
    mine = client(server, CLIENT_KEY)
    theirs = client(server, "other-client-key-0099")
    response = mine.responses.create(model="gpt-4o", input="Hi")
    assert mine.responses.retrieve(response.id).id == response.id
    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.create(model="gpt-4o", input="more", previous_response_id=response.id)
    mine.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(response.id)
    unstored = mine.responses.create(model="gpt-4o", input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(unstored.id)


def test_unsupported_tools_are_refused_clearly(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).responses.create(model="gpt-4o", input="Hi", tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.message
    assert upstream.requests == []


def test_ignored_fields_are_named_in_a_header(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream))
    reply = httpx.post(
        f"{server.url}/v1/responses", json={"model": "gpt-4o", "input": "Hi", "truncation": "auto"}, timeout=10
    )
    assert reply.status_code == 200 and reply.headers["x-llm-factory-ignored"] == "truncation"


def test_failover_is_that_of_chat(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(500, "boom"))
    server = serve(make_factory(upstream, deployment("a"), deployment("b"), strategy="first_available"))
    assert client(server).responses.create(model="gpt-4o", input="Hi").output_text == "Hello from upstream"
    assert [r.url.host for r in upstream.requests] == ["a.test", "b.test"]


def test_a_stream_failing_before_its_first_token_is_a_plain_error(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(401, "bad key", "invalid_api_key"))
    server = serve(make_factory(upstream))
    reply = httpx.post(
        f"{server.url}/v1/responses", json={"model": "gpt-4o", "input": "Hi", "stream": True}, timeout=10
    )
    assert reply.status_code == 502 and reply.headers["content-type"].startswith("application/json")
    assert "error" in reply.json()


def test_a_stream_breaking_after_commit_ends_with_response_failed(upstream: Upstream, serve: Serve) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        chunks = openai_chunks(["Hel", "lo"], finish_reason=None)
        return httpx.Response(
            200, content=sse_body(chunks)[: -len(b"data: [DONE]\n\n")], headers={"content-type": "text/event-stream"}
        )

    upstream.script("a", broken)
    server = serve(make_factory(upstream))
    events: list[Any] = list(client(server).responses.create(model="gpt-4o", input="Hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error is not None
    assert "response.completed" not in [e.type for e in events]


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/embeddings"])
def test_bodies_over_the_limit_are_413_without_reading_them_all(upstream: Upstream, serve: Serve, path: str) -> None:
    server = serve(make_factory(upstream), max_body_bytes=4096)
    big = {"model": "gpt-4o", "input": "x" * 10_000}
    reply = httpx.post(f"{server.url}{path}", json=big, timeout=10)
    assert reply.status_code == 413 and "max_body_bytes" in reply.json()["error"]["message"]
    assert upstream.requests == []


def test_a_fleet_shares_stored_responses_through_redis(upstream: Upstream, serve: Serve, redis_server: Any) -> None:
    one = serve(make_factory(upstream, state=redis_server.url))
    two = serve(make_factory(upstream, state=redis_server.url))
    first = client(one).responses.create(model="gpt-4o", input="Remember 42")
    assert client(two).responses.retrieve(first.id).output_text == first.output_text
    follow = client(two).responses.create(model="gpt-4o", input="What was it?", previous_response_id=first.id)
    assert follow.output_text == "Hello from upstream"
    assert upstream.bodies()[-1]["messages"][0] == {"role": "user", "content": "Remember 42"}
    client(one).responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client(two).responses.retrieve(first.id)
