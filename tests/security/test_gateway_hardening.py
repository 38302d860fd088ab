"""Client keys compared in constant time over every key; clients cannot steer the upstream URL,
auth header or key; YAML configuration is loaded safely."""

from __future__ import annotations

import hmac
import inspect
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core import ConfigurationError, LLMFactory
from llm_factory_core.testing import FaultyUpstream
from llm_factory_server import _gateway

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
@pytest.mark.parametrize("field", sorted(STEERING))
def test_a_client_cannot_steer_the_upstream(upstream: FaultyUpstream, field: str, stream: bool) -> None:
    factory = LLMFactory(configs(upstream))
    body = {**BODY, "stream": stream, field: STEERING[field]}
    headers = {
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-forwarded-host": "evil.test",
        "x-api-base": "http://127.0.0.1:9/evil",
    }
    with LoggingGateway(factory) as gateway, httpx.Client(base_url=gateway.url) as client:
        response = client.post("/v1/chat/completions", json=body, headers=headers)
    factory.close()
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        return  # refused outright is fine too
    [received] = upstream.requests  # it went to the configured upstream, and only there
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {OPENAI_KEY}"  # the configured key, not the client's
    assert "api-key" not in received.headers and "x-evil" not in received.headers
    assert received.headers["host"] == upstream.url.removeprefix("http://")
    assert received.body["model"] == "primary"  # the configured upstream model id


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
