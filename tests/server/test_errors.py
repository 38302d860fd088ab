"""Every error status in OpenAI's envelope, as the openai SDK sees it (its own error types)."""

from __future__ import annotations

import json

import anyio
import httpx
import openai
import pytest

from llm_factory_core.testing import openai_chunks, sse_response

from .conftest import Serve
from .helpers import UPSTREAM_KEY, ServerThread, Upstream, client, deployment, error_reply, make_factory

MESSAGES = [{"role": "user", "content": "hi"}]


def _envelope(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert UPSTREAM_KEY not in response.text
    return error  # type: ignore[no-any-return]


def post(server: ServerThread, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, **kwargs)  # type: ignore[arg-type]


# -- 400 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "param", "fragment"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"model": "gpt-4o"}', "messages", "messages"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": 7}', "temperature", "2"),
    ],
)
def test_invalid_body_is_400_not_422(gateway: ServerThread, content: bytes, param: str | None, fragment: str) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = _envelope(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert fragment in str(error["message"])


def test_sdk_bad_request_types(gateway: ServerThread, upstream: Upstream) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(model="gpt-4o", messages=[])
    assert info.value.status_code == 400
    upstream.script(
        "a",
        lambda r: error_reply(400, "This model's maximum context length is 8192 tokens.", "context_length_exceeded"),
    )
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.code == "context_length_exceeded"
    assert "maximum context length" in info.value.message


def test_unknown_strategy_is_400(gateway: ServerThread) -> None:
    response = post(gateway, {"model": "gpt-4o", "messages": MESSAGES, "load_balance_strategy": "nope"})
    assert response.status_code == 400
    assert _envelope(response)["param"] == "load_balance_strategy"


# -- 404 -----------------------------------------------------------------------------------------


def test_unknown_model_lists_what_exists(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream, deployment("a"), deployment("b", "qwen-plus")))
    with pytest.raises(openai.NotFoundError) as info:
        client(server).chat.completions.create(model="gpt-5", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert "gpt-4o" in info.value.message and "qwen-plus" in info.value.message
    # streaming requests fail the same way, before any byte of a stream
    response = post(server, {"model": "gpt-5", "messages": MESSAGES, "stream": True})
    assert response.status_code == 404 and _envelope(response)["code"] == "model_not_found"
    assert upstream.requests == []


def test_unknown_route_and_method(gateway: ServerThread) -> None:
    response = httpx.get(f"{gateway.url}/v1/images/generations")  # not served (embeddings now are)
    assert response.status_code == 404 and "Unknown route" in str(_envelope(response)["message"])
    response = httpx.get(f"{gateway.url}/v1/chat/completions")
    assert response.status_code == 405
    _envelope(response)


# -- 413 -----------------------------------------------------------------------------------------


def test_oversized_body_is_413(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream), max_body_bytes=2048)
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = post(server, big)
    assert response.status_code == 413 and _envelope(response)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit is enforced while reading
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    response = httpx.post(
        f"{server.url}/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert upstream.requests == []
    assert post(server, {"model": "gpt-4o", "messages": MESSAGES}).status_code == 200


# -- 429 / 502 / 503 / 504 -----------------------------------------------------------------------


def test_all_rate_limited_is_429_with_retry_after(upstream: Upstream, serve: Serve) -> None:
    # max_cooldown_wait=0: refuse at once instead of waiting a short cooldown out
    server = serve(make_factory(upstream, deployment("a"), deployment("b"), max_cooldown_wait=0))
    for host, wait in (("a", "7"), ("b", "3")):
        upstream.script(
            host, lambda r, w=wait: error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": w})
        )
    with pytest.raises(openai.RateLimitError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "3"
    body = info.value.body
    assert isinstance(body, dict) and len(body["attempts"]) == 2
    assert {a.split(" ")[0] for a in body["attempts"]} == {"a-gpt-4o", "b-gpt-4o"}
    # both now cool down: the next call is refused at once, still 429, saying when to come back
    response = post(server, {"model": "gpt-4o", "messages": MESSAGES})
    assert response.status_code == 429 and 1 <= int(response.headers["retry-after"]) <= 3
    assert len(upstream.requests) == 2


def test_upstream_failures_are_502_then_503(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream, deployment("a"), deployment("b")))
    upstream.script("a", lambda r: error_reply(500, "boom"))
    upstream.script("b", lambda r: error_reply(401, "Incorrect API key provided: sk-up...0001", "invalid_api_key"))
    with pytest.raises(openai.InternalServerError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 502
    message = info.value.message
    assert "a-gpt-4o" in message and "b-gpt-4o" in message and "ServerError" in message
    assert UPSTREAM_KEY not in json.dumps(info.value.body)
    # b's key is disabled; a cools down for a second: once a's cooldown is over a answers again,
    # but while every deployment is out the answer is 429 (cooling) -- and 503 when all are disabled
    upstream.script("a", lambda r: error_reply(401, "bad key", "invalid_api_key"))
    server2 = serve(make_factory(upstream, deployment("a"), max_cooldown_wait=0))
    with pytest.raises(openai.InternalServerError):
        client(server2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as info:
        client(server2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "no_deployment_available"


def test_upstream_timeout_is_504(upstream: Upstream, serve: Serve) -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        raise AssertionError("not reached")

    upstream.script("a", silent, times=2)
    for stream in (False, True):
        config = deployment("a", timeout=0.2, first_token_timeout=0.2)
        server = serve(make_factory(upstream, config, max_cooldown_wait=0))
        response = post(server, {"model": "gpt-4o", "messages": MESSAGES, "stream": stream})
        assert response.status_code == 504
        assert _envelope(response)["code"] == "upstream_timeout"
    with pytest.raises(openai.RateLimitError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 429  # cooling down after the timeout: refused without trying


def test_failure_before_commit_is_a_json_error(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: error_reply(400, "content rejected by policy", "content_filter"))
    server = serve(make_factory(upstream))
    response = post(server, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert _envelope(response)["code"] == "content_filter"


def test_failure_after_commit_ends_the_stream_with_an_error_event(upstream: Upstream, serve: Serve) -> None:
    upstream.script("a", lambda r: sse_response(openai_chunks(["Hel", "lo"]), fail_after=2))
    server = serve(make_factory(upstream))
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    ) as response:
        assert response.status_code == 200
        raw = response.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert b"[DONE]" not in raw
    last = json.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["type"] == "stream_interrupted"
    assert UPSTREAM_KEY not in raw.decode()
    assert json.loads(events[1].removeprefix(b"data: "))["choices"][0]["delta"]["content"] == "Hel"

    upstream.script("a", lambda r: sse_response(openai_chunks(["Hel", "lo"]), fail_after=2))
    server = serve(make_factory(upstream))  # a fresh one: the first broke stream put "a" in cooldown
    stream = client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert "Hel" in received
    assert "stream broke" in info.value.message
