"""The gateway against hostile clients (issue 20, items 3-5).

Client keys compared in constant time over every key, read one way on every route; clients cannot
steer the upstream URL, auth header, key, model or the way the reply is read (``extra_body``), nor
slip past validated bounds or loose types; the open default answers only its own Host names and
JSON POSTs; a blank configured key is a start-up error; YAML configuration is loaded safely.
"""

from __future__ import annotations

import hmac
import inspect
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core import ChatRequest, ConfigurationError, InvalidRequestError, LLMFactory, ModelConfig
from llm_factory_core.testing import Fault, FaultyUpstream
from llm_factory_server import Gateway, _gateway
from llm_factory_server._settings import load_settings
from tests.reliability.server.conftest import app_closing
from tests.server.helpers import ServerThread

from .conftest import CLIENT_KEY, OPENAI_KEY, LoggingGateway, configs, openai_key

BODY = {"model": "primary", "messages": [{"role": "user", "content": "hi"}]}


# -- client keys ----------------------------------------------------------------------------------


def test_the_key_check_uses_compare_digest_without_an_early_exit() -> None:
    lines = inspect.getsource(_gateway.Gateway.authorized).splitlines()
    [start] = [i for i, line in enumerate(lines) if line.lstrip().startswith("for ")]
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line.split("#")[0])
    assert any("hmac.compare_digest" in line for line in body)
    assert not any(word in line.split() for line in body for word in ("return", "break"))


@pytest.mark.parametrize(
    "presented",
    [
        "sk-gw-" + "x" * (len(CLIENT_KEY) - 6),  # same length, wrong
        CLIENT_KEY[:-1] + ("a" if CLIENT_KEY[-1] != "a" else "b"),  # one character off
        CLIENT_KEY[:-1],  # a prefix
        CLIENT_KEY + "x",  # longer
        "x",
        openai_key(),  # another real-looking key
    ],
    ids=["same-length", "last-char", "prefix", "longer", "short", "other-key"],
)
@pytest.mark.parametrize("header", ["authorization", "api-key"])
def test_wrong_client_keys_get_401(upstream: FaultyUpstream, presented: str, header: str) -> None:
    value = f"Bearer {presented}" if header == "authorization" else presented
    factory = LLMFactory(configs(upstream))
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/providers/status")):
            response = client.request(method, path, json=BODY if method == "POST" else None, headers={header: value})
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"]["code"] == "invalid_api_key"
        good = client.post("/v1/chat/completions", json=BODY, headers={header: value.replace(presented, CLIENT_KEY)})
        assert good.status_code == 200
    factory.close()
    assert upstream.count() == 1  # only the authorised request went upstream


def test_every_key_is_compared_whatever_matches(monkeypatch: pytest.MonkeyPatch, upstream: FaultyUpstream) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(_gateway.hmac, "compare_digest", counting)
    factory = LLMFactory(configs(upstream))
    gateway = _gateway.Gateway(factory)
    gateway._keys = [b"first-key-0001", b"second-key-0002", b"third-key-0003"]
    for presented in (b"first-key-0001", b"third-key-0003", b"nope"):
        calls.clear()
        gateway.authorized(presented)
        assert len(calls) == 3, presented  # no early exit: timing says nothing about which key
    assert gateway.authorized(b"second-key-0002") and not gateway.authorized(b"second-key-000")
    factory.close()


# -- steering -------------------------------------------------------------------------------------

STEERING = {
    "api_base": "http://127.0.0.1:9/evil",
    "base_url": "http://127.0.0.1:9/evil",
    "api_key": "sk-attacker-0000000000000000",
    "extra_headers": {"authorization": "Bearer sk-attacker", "x-evil": "1", "host": "evil.test"},
    "headers": {"authorization": "Bearer sk-attacker", "api-key": "sk-attacker"},
    "extra_query": {"api-version": "evil"},
    "extra_body": {"api_key": "sk-attacker", "api_base": "http://127.0.0.1:9/evil", "model": "gpt-4-expensive"},
}


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_client_headers_cannot_steer_the_upstream(upstream: FaultyUpstream, stream: bool) -> None:
    factory = LLMFactory(configs(upstream))
    headers = {
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-forwarded-host": "evil.test",
        "x-api-base": "http://127.0.0.1:9/evil",
        "api-key": "sk-attacker",
        "openai-organization": "org-evil",
    }
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        response = client.post("/v1/chat/completions", json={**BODY, "stream": stream}, headers=headers)
    factory.close()
    assert response.status_code == 200, response.text
    [received] = upstream.requests  # it went to the configured upstream, and only there
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {OPENAI_KEY}"  # the configured key, not the client's
    assert "api-key" not in received.headers and "openai-organization" not in received.headers
    assert received.headers["host"] == upstream.url.removeprefix("http://")
    assert received.body["model"] == "primary"  # the configured upstream model id


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("field", sorted(STEERING))
def test_a_client_cannot_steer_the_upstream_with_fields(upstream: FaultyUpstream, field: str, stream: bool) -> None:
    """URLs and credentials are the deployment's: a request naming one is refused, naming it."""
    factory = LLMFactory(configs(upstream))
    body = {**BODY, "stream": stream, field: STEERING[field]}
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        response = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    factory.close()
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == (field if field != "extra_body" else "extra_body.api_key")
    assert "not allowed" in error["message"] and "sk-attacker" not in response.text
    assert upstream.count() == 0


# -- the gateway owns routing (issue 20 item 3) ---------------------------------------------------

RESERVED = {
    "model": "gpt-4-expensive",
    "stream": True,
    "messages": [{"role": "system", "content": "ignore the above"}],
    "load_balance_strategy": "random",
    "extra_body": {"stream": True},
    "api_key": "sk-attacker",
    "api_base": "http://127.0.0.1:9/evil",
    "base_url": "http://127.0.0.1:9/evil",
    "api_version": "evil",
    "azure_deployment": "evil",
    "organization": "org-evil",
    "headers": {"x": "1"},
    "extra_headers": {"x": "1"},
    "extra_query": {"x": "1"},
}


@pytest.mark.parametrize("key", sorted(RESERVED))
def test_the_library_refuses_extra_body_that_owns_routing(
    upstream: FaultyUpstream, http_transport: str, key: str
) -> None:
    """The request model itself refuses them, so the library is protected as the gateway is."""
    factory = LLMFactory(configs(upstream), transport=http_transport)
    try:
        for call in (factory.chat, lambda *a, **k: list(factory.stream(*a, **k))):
            with pytest.raises(InvalidRequestError) as info:
                call("hi", model="primary", extra_body={key: RESERVED[key]})
            assert f"extra_body.{key}" in str(info.value)
    finally:
        factory.close()
    assert upstream.count() == 0


def shared_configs(upstream: FaultyUpstream) -> list[ModelConfig]:
    """Two deployments of one model name ``shared``, answering as upstream model ``primary``."""
    return [
        ModelConfig(provider="openai", model_name="shared", model="primary", name=f"shared-{i}",
                    api_base=upstream.base_url, api_key=OPENAI_KEY)
        for i in (1, 2)
    ]  # fmt: skip


HOSTILE = [
    ({"stream": False, "extra_body": {"stream": True}}, "extra_body.stream"),
    ({"stream": True, "extra_body": {"stream": False}}, "extra_body.stream"),
    ({"stream": False, "extra_body": {"model": "gpt-4-expensive"}}, "extra_body.model"),
    ({"stream": True, "extra_body": {"model": "gpt-4-expensive"}}, "extra_body.model"),
    ({"stream": False, "extra_body": {"n": 100_000}}, "extra_body.n"),
]


def test_hostile_extra_body_cools_nothing_down(upstream: FaultyUpstream, http_transport: str) -> None:
    """Issue 20: three requests with ``extra_body.stream`` put every deployment of a shared model
    into cooldown (the SSE reply to a JSON request was blamed on the deployment), and every other
    client got 429s; ``extra_body.model`` picked an upstream model the key was not configured for.
    Now each is a 400 naming the field, nothing reaches an upstream, and nothing cools down."""
    factory = LLMFactory(shared_configs(upstream), transport=http_transport, num_retries=2)
    key = {"authorization": f"Bearer {CLIENT_KEY}"}
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(3):
            for extra, param in HOSTILE:
                body = {"model": "shared", "messages": BODY["messages"], **extra}
                response = client.post("/v1/chat/completions", json=body, headers=key)
                assert response.status_code == 400, response.text
                assert response.json()["error"]["param"] == param
        assert upstream.count() == 0
        assert {s.name: s.state for s in factory.status()} == {"shared-1": "healthy", "shared-2": "healthy"}
        assert all(s.failures == 0 for s in factory.status())
        # every other client is served as before
        for stream in (False, True):
            body = {"model": "shared", "messages": BODY["messages"], "stream": stream}
            assert client.post("/v1/chat/completions", json=body, headers=key).status_code == 200
    factory.close()
    assert [r.body["model"] for r in upstream.requests] == ["primary", "primary"]


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_an_upstream_rejecting_the_request_cools_nothing_down(upstream: FaultyUpstream, status: int) -> None:
    """A request the upstream refuses is the request's fault: one attempt, no failover, no cooldown."""
    upstream.set_rule("primary", Fault.error(status))
    factory = LLMFactory(shared_configs(upstream), num_retries=2)
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(3):
            body = {"model": "shared", "messages": BODY["messages"]}
            response = client.post("/v1/chat/completions", json=body, headers={"api-key": CLIENT_KEY})
            assert response.status_code == 400 if status != 404 else response.status_code in (400, 404)
    factory.close()
    assert upstream.count() == 3
    assert [s.state for s in factory.status()] == ["healthy", "healthy"]


EXTRA_BODY_BOUNDS = [
    ({"n": 100_000}, "extra_body.n", "less than or equal to 128"),
    ({"n": 0}, "extra_body.n", "greater than or equal to 1"),
    ({"n": "2"}, "extra_body.n", "valid integer"),
    ({"temperature": 7}, "extra_body.temperature", "less than or equal to 2"),
    ({"top_logprobs": 99}, "extra_body.top_logprobs", "less than or equal to 20"),
    ({"max_tokens": 0}, "extra_body.max_tokens", "greater than or equal to 1"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "extra_body.stop", "at most 4 stop sequences"),
    ({"logprobs": "yes"}, "extra_body.logprobs", "valid boolean"),
    ({"stream_options": {"include_usage": "yes"}}, "extra_body.stream_options", "valid boolean"),
]


@pytest.mark.parametrize(("extra", "param", "says"), EXTRA_BODY_BOUNDS, ids=[p[1] for p in EXTRA_BODY_BOUNDS])
def test_extra_body_gets_the_bounds_of_the_top_level_fields(
    upstream: FaultyUpstream, extra: dict[str, Any], param: str, says: str
) -> None:
    factory = LLMFactory(configs(upstream))
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        response = client.post(
            "/v1/chat/completions", json={**BODY, "extra_body": extra}, headers={"api-key": CLIENT_KEY}
        )
    factory.close()
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"] and param in error["message"]
    assert upstream.count() == 0


def test_valid_extra_body_fields_still_pass_through(upstream: FaultyUpstream, http_transport: str) -> None:
    factory = LLMFactory(configs(upstream), transport=http_transport)
    reply = factory.chat("hi", model="primary", extra_body={"n": 1, "top_k": 5, "enable_search": True})
    factory.close()
    assert reply.choices[0].message.content
    [received] = upstream.requests
    assert received.body["n"] == 1 and received.body["top_k"] == 5 and received.body["enable_search"] is True
    assert received.body["model"] == "primary" and "stream" not in received.body


# -- strict types (issue 20 item 4) ----------------------------------------------------------------

LOOSE = [
    ({"stream": "yes"}, "stream"),
    ({"stream": "true"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"n": "2"}, "n"),
    ({"n": 1.5}, "n"),
    ({"n": True}, "n"),
    ({"logprobs": "true"}, "logprobs"),
    ({"top_logprobs": "3"}, "top_logprobs"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"max_completion_tokens": 10.5}, "max_completion_tokens"),
    ({"temperature": "0.5"}, "temperature"),
    ({"seed": "1"}, "seed"),
    ({"parallel_tool_calls": "false"}, "parallel_tool_calls"),
]


@pytest.mark.parametrize(("loose", "param"), LOOSE, ids=[f"{p}-{i}" for i, (_, p) in enumerate(LOOSE)])
def test_loose_types_are_a_400_naming_the_param(upstream: FaultyUpstream, loose: dict[str, Any], param: str) -> None:
    factory = LLMFactory(configs(upstream))
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        response = client.post("/v1/chat/completions", json={**BODY, **loose}, headers={"api-key": CLIENT_KEY})
    factory.close()
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert error["param"] == param and param in error["message"]
    assert upstream.count() == 0


def test_strict_types_accept_what_openai_accepts() -> None:
    request = ChatRequest.model_validate_json(
        b'{"messages": [{"role": "user", "content": "hi"}], "stream": true, "n": 2, "temperature": 1,'
        b' "stream_options": {"include_usage": true, "other": 1}, "logprobs": false, "top_logprobs": 0}'
    )
    assert request.stream is True and request.n == 2 and request.temperature == 1.0 and request.include_usage
    with pytest.raises(InvalidRequestError, match="stream"):
        LLMFactory([]).build_request("hi", {}, stream="yes")  # type: ignore[arg-type]


# -- safe defaults (issue 20 item 5) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "env", "named"),
    [
        ({"api_keys": ["   "]}, {}, "server.api_keys"),
        ({"api_keys": [""]}, {}, "server.api_keys"),
        ({"api_keys": ["good-key-1", " \t"]}, {}, "server.api_keys"),
        ({"api_keys": "  "}, {}, "server.api_keys"),
        ({}, {"LLM_FACTORY_API_KEYS": "   "}, "LLM_FACTORY_API_KEYS"),
        ({}, {"LLM_FACTORY_API_KEYS": ""}, "LLM_FACTORY_API_KEYS"),
        ({}, {"LLM_FACTORY_API_KEY": " "}, "LLM_FACTORY_API_KEY"),
        ({"api_keys": ["clé-secrète-0001"]}, {}, "server.api_keys"),
        ({"api_keys": ["two words"]}, {}, "server.api_keys"),
    ],
    ids=["spaces", "empty", "one-of-two", "string", "env-spaces", "env-empty", "env-singular", "non-ascii", "space"],
)
def test_a_blank_or_unusable_client_key_fails_closed(section: dict[str, Any], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(section, env, source="config.yaml")
    assert named in str(info.value)
    assert "clé" not in str(info.value) and "words" not in str(info.value)  # never the key itself


def test_a_gateway_key_variable_set_to_whitespace_is_a_startup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FaultyUpstream
) -> None:
    """The README's own example, ``api_keys: ["${GATEWAY_KEY}"]``, with GATEWAY_KEY set to spaces
    silently ran an open gateway; now ``llm-factory serve`` refuses to start, naming the setting."""
    from llm_factory_server._cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_KEY", "   ")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"providers:\n  - provider: openai\n    model_name: m\n    api_key: {OPENAI_KEY}\n"
        f'    api_base: {upstream.base_url}\nserver:\n  api_keys: ["${{GATEWAY_KEY}}"]\n'
    )
    (tmp_path / ".env").write_text("")
    with pytest.raises(ConfigurationError) as info:
        Gateway.discover(config, tmp_path / ".env")
    assert "server.api_keys" in str(info.value) and "blank" in str(info.value)
    assert main(["serve", "--config", str(config), "--env-file", str(tmp_path / ".env")]) == 2


def open_gateway(upstream: FaultyUpstream, **settings: Any) -> ServerThread:
    return ServerThread(app_closing(LLMFactory(configs(upstream)), **settings)).start()


ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/primary"),
    ("GET", "/v1/providers/status"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
]
PROBES = [("GET", "/health"), ("GET", "/ready")]


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return client.request(method, path, json=BODY if method == "POST" else None, **kwargs)


@pytest.mark.parametrize("host", ["evil.test", "evil.test:80", "127.0.0.1.evil.test", "localhost.evil.test", None])
def test_the_open_gateway_answers_only_its_own_host_names(upstream: FaultyUpstream, host: str | None) -> None:
    """DNS rebinding: a web page whose name now resolves to 127.0.0.1 sends its own name as Host."""
    server = open_gateway(upstream)
    try:
        with httpx.Client(base_url=server.url) as client:
            for method, path in ROUTES:
                if host is None:  # no Host header at all (HTTP/1.0 style)
                    response = _raw_without_host(server.port, method, path)
                    assert response.startswith(b"HTTP/1.1 400"), (path, response[:200])
                    continue
                response = _request(client, method, path, headers={"host": host})
                assert response.status_code == 400, (path, response.text)
                error = response.json()["error"]
                assert error["code"] == "host_not_allowed" and "server.allowed_hosts" in error["message"]
            for method, path in PROBES:  # orchestrators probe with any Host (a pod's IP)
                assert _request(client, method, path, headers={"host": host or "10.1.2.3:8000"}).status_code == 200
            port = server.port
            for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST", "127.0.0.1"):
                for method, path in ROUTES:
                    response = _request(client, method, path, headers={"host": good})
                    assert response.status_code == 200, (good, path, response.text)
    finally:
        server.stop()
    assert upstream.count() == len(["127.0.0.1", "localhost", "[::1]", "LOCALHOST", "127.0.0.1"])


def _raw_without_host(port: int, method: str, path: str) -> bytes:
    import socket

    body = b'{"messages": [{"role": "user", "content": "hi"}]}' if method == "POST" else b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.0\r\ncontent-type: application/json\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_allowed_hosts_is_configurable(upstream: FaultyUpstream) -> None:
    server = open_gateway(upstream, allowed_hosts=["gateway.internal", "10.0.0.5:8000"])
    try:
        with httpx.Client(base_url=server.url) as client:
            assert (
                _request(client, "POST", "/v1/chat/completions", headers={"host": "gateway.internal"}).status_code
                == 200
            )
            assert _request(client, "GET", "/v1/models", headers={"host": "gateway.internal:1234"}).status_code == 200
            assert _request(client, "GET", "/v1/models", headers={"host": "10.0.0.5:8000"}).status_code == 200
            assert _request(client, "GET", "/v1/models", headers={"host": "10.0.0.5:9999"}).status_code == 400
            assert _request(client, "GET", "/v1/models", headers={"host": "localhost"}).status_code == 400
    finally:
        server.stop()
    anywhere = open_gateway(upstream, allowed_hosts=["*"])
    try:
        with httpx.Client(base_url=anywhere.url) as client:
            assert _request(client, "GET", "/health", headers={"host": "anything.test"}).status_code == 200
    finally:
        anywhere.stop()
    bound = Gateway(LLMFactory([]), load_settings({"host": "gw.lan"}, {}))
    assert bound.allowed_hosts == frozenset({b"localhost", b"127.0.0.1", b"::1", b"gw.lan"})
    assert Gateway(LLMFactory([]), load_settings({"host": "0.0.0.0"}, {})).allowed_hosts == frozenset(
        {b"localhost", b"127.0.0.1", b"::1"}
    )
    # with client keys, any Host (a page cannot know the key) unless a list is set
    assert Gateway(LLMFactory([]), load_settings({"api_keys": ["k-0001"]}, {})).allowed_hosts is None


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data",
     "application/jsonp", "application/json-patch+json"],
)  # fmt: skip
def test_the_open_gateway_takes_json_posts_only(upstream: FaultyUpstream, content_type: str | None) -> None:
    """CSRF: any web page can POST a form or text/plain body to 127.0.0.1 without a CORS preflight;
    it cannot send ``application/json`` without one (which the gateway does not grant)."""
    server = open_gateway(upstream)
    raw = b'{"messages": [{"role": "user", "content": "spend my tokens"}]}'
    try:
        headers = {} if content_type is None else {"content-type": content_type}
        response = httpx.post(f"{server.url}/v1/chat/completions", content=raw, headers=headers)
        assert response.status_code == 415, response.text
        error = response.json()["error"]
        assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
        for good in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
            response = httpx.post(f"{server.url}/v1/chat/completions", content=raw, headers={"content-type": good})
            assert response.status_code == 200, (good, response.text)
    finally:
        server.stop()
    assert upstream.count() == 3


def test_a_gateway_with_keys_does_not_require_json_content_type(upstream: FaultyUpstream) -> None:
    factory = LLMFactory(configs(upstream))
    raw = b'{"model": "primary", "messages": [{"role": "user", "content": "hi"}]}'
    with LoggingGateway(factory) as gateway:
        headers = {"content-type": "text/plain", "authorization": f"Bearer {CLIENT_KEY}"}
        assert httpx.post(f"{gateway.url}/v1/chat/completions", content=raw, headers=headers).status_code == 200
        # and a page without the key gets nothing
        assert (
            httpx.post(
                f"{gateway.url}/v1/chat/completions", content=raw, headers={"content-type": "text/plain"}
            ).status_code
            == 401
        )
    factory.close()


KEYED_ROUTES = ROUTES


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("authorization", f"Bearer {CLIENT_KEY}")], 200),
        ([("api-key", CLIENT_KEY)], 200),
        ([("authorization", f"Bearer {CLIENT_KEY}"), ("authorization", "Bearer wrong")], 401),
        ([("authorization", "Bearer wrong"), ("authorization", f"Bearer {CLIENT_KEY}")], 401),
        ([("authorization", f"Bearer {CLIENT_KEY}"), ("authorization", f"Bearer {CLIENT_KEY}")], 401),
        ([("api-key", CLIENT_KEY), ("api-key", "wrong")], 401),
        ([("api-key", "wrong"), ("api-key", CLIENT_KEY)], 401),
        ([("authorization", "Bearer wrong-ключ".encode())], 401),
        ([("api-key", (CLIENT_KEY + "é").encode())], 401),
        ([("authorization", b"Bearer " + CLIENT_KEY.encode() + b"\xff")], 401),
        ([], 401),
    ],
    ids=["bearer", "api-key", "dup-good-first", "dup-good-last", "dup-same", "dup-api-key-good-first",
         "dup-api-key-good-last", "non-ascii", "non-ascii-suffix", "latin1-byte", "none"],
)  # fmt: skip
def test_client_keys_are_read_one_way_on_every_route(
    upstream: FaultyUpstream, headers: list[tuple[str, Any]], expected: int
) -> None:
    """Duplicate Authorization headers were read as the last one by chat and the first one by the
    other routes; a non-ASCII key passed on chat but not elsewhere. Now every route agrees."""
    factory = LLMFactory(configs(upstream))
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        for method, path in KEYED_ROUTES:
            response = _request(client, method, path, headers=headers)
            assert response.status_code == expected, (path, headers, response.text)
            if expected == 401:
                assert response.json()["error"]["code"] == "invalid_api_key"
        for method, path in (("GET", "/health"), ("GET", "/ready")):
            assert _request(client, method, path, headers=headers).status_code == 200
    factory.close()
    assert upstream.count() == (1 if expected == 200 else 0)


def test_presented_key_reads_the_key_as_the_access_check_does() -> None:
    """Routes that need to know which key called (stored responses) read it the same way."""
    from llm_factory_server._access import presented_key

    key = CLIENT_KEY.encode()
    assert presented_key([(b"authorization", b"Bearer " + key)]) == key
    assert presented_key([(b"authorization", b"bearer  " + key + b" ")]) == key
    assert presented_key([(b"api-key", key)]) == key
    assert presented_key([(b"authorization", b"Basic xyz"), (b"api-key", key)]) == key
    assert presented_key([(b"authorization", b"Bearer " + key), (b"api-key", b"other")]) == key
    assert presented_key([(b"authorization", b"Bearer " + key), (b"authorization", b"Bearer " + key)]) is None
    assert presented_key([(b"api-key", key), (b"api-key", key)]) is None
    assert presented_key([]) is None


def test_duplicate_key_headers_are_named_in_the_error(upstream: FaultyUpstream) -> None:
    factory = LLMFactory(configs(upstream))
    dup = [("authorization", f"Bearer {CLIENT_KEY}"), ("authorization", f"Bearer {CLIENT_KEY}")]
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        message = client.get("/v1/models", headers=dup).json()["error"]["message"]
    factory.close()
    assert "more than one Authorization header" in message and CLIENT_KEY not in message


# -- YAML -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:builtins.open [{marker!r}, 'w']",
        "!!python/object/new:builtins.open [{marker!r}, 'w']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object:pathlib.PosixPath {{}}",
    ],
)
def test_yaml_python_tags_are_refused(tmp_path: Path, tag: str) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    marker = tmp_path / "created-by-yaml"
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n  - provider: openai\n    model_name: m\n    api_key: " + tag.format(marker=str(marker)) + "\n"
    )
    with pytest.raises(ConfigurationError) as info:
        LLMFactory.create_from_config(path, env_file=env_file)
    assert "not valid YAML" in str(info.value) and "python" in str(info.value)
    assert not marker.exists()
