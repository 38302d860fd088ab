"""Client keys: Bearer or api-key, compared in constant time against every key; open without keys."""

from __future__ import annotations

import hmac

import httpx
import openai
import pytest
from pydantic import SecretStr

from llm_factory_server import Gateway, ServerSettings
from llm_factory_server._gateway import loopback
from llm_factory_server._serve import open_gateway_warning

from .conftest import Serve
from .helpers import CLIENT_KEY, ServerThread, Upstream, client, make_factory

OTHER_KEY = "second-client-key-7777"


@pytest.fixture
def locked(upstream: Upstream, serve: Serve) -> ServerThread:
    return serve(make_factory(upstream), api_keys=[OTHER_KEY, CLIENT_KEY])


def test_sdk_with_the_right_key(locked: ServerThread) -> None:
    for key in (CLIENT_KEY, OTHER_KEY):
        reply = client(locked, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content
    assert [m.id for m in client(locked, CLIENT_KEY).models.list()] == ["gpt-4o"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/v1/models/gpt-4o", "/v1/providers/status"])
def test_wrong_or_missing_key_is_401(locked: ServerThread, upstream: Upstream, path: str) -> None:
    method = "POST" if path.endswith("completions") else "GET"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"api-key": "wrong"}, {"authorization": CLIENT_KEY}):
        response = httpx.request(method, locked.url + path, json=body, headers=headers)
        assert response.status_code == 401, headers
        error = response.json()["error"]
        assert error["code"] == "invalid_api_key"
        assert CLIENT_KEY not in response.text and "wrong" not in response.text
    for headers in (
        {"authorization": f"Bearer {CLIENT_KEY}"},
        {"Api-Key": CLIENT_KEY},
        {"authorization": f"bearer {OTHER_KEY}"},
    ):
        assert httpx.request(method, locked.url + path, json=body, headers=headers).status_code == 200
    assert len(upstream.requests) == (3 if method == "POST" else 0)


def test_sdk_error_type_for_401(locked: ServerThread) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client(locked, "wrong-key").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401


def test_probes_stay_open_and_details_need_the_key(locked: ServerThread) -> None:
    assert httpx.get(f"{locked.url}/health").status_code == 200
    assert httpx.get(f"{locked.url}/ready").status_code == 200
    for path in ("/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"):
        response = httpx.get(locked.url + path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"
        keyed = httpx.get(locked.url + path, headers={"authorization": f"Bearer {CLIENT_KEY}"})
        assert keyed.status_code == 200, path
    assert "llm_factory_requests" in httpx.get(f"{locked.url}/metrics", headers={"api-key": CLIENT_KEY}).text


def test_open_without_keys(gateway: ServerThread) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200


def test_every_key_is_compared(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the comparison count does not depend on which key (if any) matched."""
    gateway = Gateway(make_factory(upstream), ServerSettings(api_keys=["k1-aaaa", "k2-bbbb", "k3-cccc"]))
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented, expected in ((b"k1-aaaa", True), (b"k3-cccc", True), (b"nope", False)):
        calls.clear()
        assert gateway.authorized(presented) is expected
        assert calls == [b"k1-aaaa", b"k2-bbbb", b"k3-cccc"]
    assert gateway.authorized(None) is False
    gateway.factory.close()


def test_settings_never_show_keys() -> None:
    settings = ServerSettings(api_keys=[SecretStr(CLIENT_KEY)])
    assert CLIENT_KEY not in repr(settings) and CLIENT_KEY not in str(settings.model_dump())


def test_open_gateway_warning() -> None:
    assert loopback("127.0.0.1") and loopback("localhost") and loopback("::1") and not loopback("0.0.0.0")
    assert open_gateway_warning(ServerSettings(host="127.0.0.1")) is None
    assert open_gateway_warning(ServerSettings(host="0.0.0.0", api_keys=["k"])) is None
    warning = open_gateway_warning(ServerSettings(host="0.0.0.0"))
    assert warning is not None and "LLM_FACTORY_API_KEYS" in warning
