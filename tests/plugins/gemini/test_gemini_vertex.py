"""Vertex AI over real sockets on each transport: the URL shape, fixed tokens, and google-auth
credentials refreshed before they expire, one refresh at a time, off the hot path. The
credentials are a fake with google-auth's interface (``token``, ``expiry``, ``refresh(request)``):
no network, no Google account."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import anyio
import httpx
import pytest

import llm_factory_gemini._provider as gemini_provider
from llm_factory_core import AllDeploymentsFailedError, AuthenticationError, UpstreamConnectionError
from llm_factory_core.testing import serve_handler
from llm_factory_gemini._auth import TokenError, TokenSource

from .helpers import Env

pytestmark = pytest.mark.anyio

MODEL = "gemini-2.5-pro"


class FakeCredentials:
    """google.auth.credentials.Credentials as the plugin uses it: expiry is naive UTC."""

    def __init__(self, *, lifetime: float = 3600.0, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.token: str | None = None
        self.expiry: dt.datetime | None = None
        self.lifetime = lifetime
        self.delay = delay
        self.fail = fail
        self.refreshes = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def refresh(self, request: Any) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.threads.add(threading.current_thread().name)
        try:
            time.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            self.refreshes += 1
            self.token = f"ya29.fake-token-{self.refreshes}"
            self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=self.lifetime)
        finally:
            with self._lock:
                self.in_flight -= 1

    def expire(self, seconds_left: float = -1.0) -> None:
        self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=seconds_left)


class RefreshError(Exception):
    """Stands for google.auth.exceptions.RefreshError."""


class TransportError(Exception):
    """Stands for google.auth.exceptions.TransportError (matched by name, as google-auth's is)."""


@pytest.fixture
def credentials(env: Env, monkeypatch: pytest.MonkeyPatch) -> FakeCredentials:
    creds = FakeCredentials()
    loads: list[dict[str, Any]] = []

    def load(**kw: Any) -> FakeCredentials:
        loads.append(kw)
        return creds

    monkeypatch.setattr(gemini_provider, "load_credentials", load)
    monkeypatch.setattr("llm_factory_gemini._auth._default_request", lambda: object())
    env.fake.tokens = {f"ya29.fake-token-{n}" for n in range(1, 10)}
    creds.loads = loads  # type: ignore[attr-defined]
    return creds


def vertex(env: Env, **kw: Any) -> Any:
    kw.setdefault("use_adc", True)
    return env.config(key=None, model=MODEL, vertex_project="my-project", vertex_location="us-central1", **kw)


async def test_adc_tokens_are_sent_as_bearer_on_the_vertex_path(env: Env, credentials: FakeCredentials) -> None:
    async with env.factory(vertex(env)) as f:
        await f.chat_async("Hi")
        [c async for c in f.stream_async("Hi")]
    assert credentials.loads == [{"use_adc": True, "credentials_file": None}]  # type: ignore[attr-defined]
    assert credentials.refreshes == 1  # the second call reused the fresh token
    for request in env.fake.requests:
        assert request.headers["authorization"] == "Bearer ya29.fake-token-1"
        assert "x-goog-api-key" not in request.headers
        assert request.path.startswith("/v1/projects/my-project/locations/us-central1/publishers/google/models/")
    assert [r.path.rsplit(":", 1)[1] for r in env.fake.requests] == ["generateContent", "streamGenerateContent"]


async def test_an_expired_token_is_refreshed_once_for_many_concurrent_calls(
    env: Env, credentials: FakeCredentials
) -> None:
    async with env.factory(vertex(env)) as f:
        await f.chat_async("Hi")
        credentials.expire()
        credentials.delay = 0.2
        results: list[str] = []

        async def call() -> None:
            result = await f.chat_async("Hi")
            results.append(result.choices[0].message.content or "")

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(call)
    assert results == ["Hello from the fake"] * 12
    assert credentials.refreshes == 2 and credentials.most_in_flight == 1
    assert {r.headers["authorization"] for r in env.fake.requests[1:]} == {"Bearer ya29.fake-token-2"}


async def test_a_token_about_to_expire_is_refreshed_in_the_background(env: Env, credentials: FakeCredentials) -> None:
    async with env.factory(vertex(env, token_refresh_margin=300)) as f:
        await f.chat_async("Hi")
        credentials.expire(seconds_left=60)  # valid, but inside the margin
        credentials.delay = 0.3
        started = time.monotonic()
        await f.chat_async("Hi")
        assert time.monotonic() - started < 0.3, "the call did not wait for the refresh"
        assert env.fake.requests[-1].headers["authorization"] == "Bearer ya29.fake-token-1"
        for _ in range(100):
            if credentials.refreshes == 2:
                break
            await anyio.sleep(0.02)
        await f.chat_async("Hi")
    assert credentials.refreshes == 2
    assert "gemini-token-refresh" in credentials.threads
    assert env.fake.requests[-1].headers["authorization"] == "Bearer ya29.fake-token-2"


async def test_a_refused_refresh_disables_the_deployment_without_leaking(
    env: Env, credentials: FakeCredentials
) -> None:
    credentials.fail = RefreshError("invalid_grant: Invalid JWT Signature.")
    async with env.factory(vertex(env), env.config("second"), num_retries=0) as f:
        result = await f.chat_async("Hi")
        status = {s.name: s for s in f.status()}
    assert result.deployment == "second"
    assert status["first"].state == "disabled"
    assert "invalid_grant" in str(status["first"].reason)
    assert env.fake.requests[-1].headers.get("x-goog-api-key")  # only the second deployment was called


async def test_an_unreachable_token_endpoint_is_a_connection_error(env: Env, credentials: FakeCredentials) -> None:
    credentials.fail = TransportError("Failed to connect to oauth2.googleapis.com")
    async with env.factory(vertex(env), num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    assert isinstance(info.value.last_error, UpstreamConnectionError)
    assert not isinstance(info.value.last_error, AuthenticationError)


async def test_a_fixed_access_token_still_works(env: Env) -> None:
    env.fake.tokens = {"ya29.static-token"}
    config = env.config(
        key=None, model=MODEL, vertex_project="p", vertex_location="global", access_token="ya29.static-token"
    )
    async with env.factory(config) as f:
        await f.chat_async("Hi")
    request = env.fake.requests[-1]
    assert request.headers["authorization"] == "Bearer ya29.static-token"
    assert request.path == f"/v1/projects/p/locations/global/publishers/google/models/{MODEL}:generateContent"


async def test_a_wrong_token_is_an_authentication_error(env: Env) -> None:
    env.fake.tokens = {"ya29.current"}
    config = env.config(key=None, model=MODEL, vertex_project="p", access_token="ya29.expired-token")
    async with env.factory(config, num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("Hi")
    assert isinstance(info.value.last_error, AuthenticationError)
    assert info.value.last_error.status == 401
    assert "ya29.expired-token" not in str(info.value)


async def test_token_source_waits_for_the_refresh_in_flight() -> None:
    creds = FakeCredentials(delay=0.2)
    source = TokenSource(lambda: creds, margin=300, request_factory=object)
    tokens: list[str] = []

    async def take() -> None:
        tokens.append(await source.token())

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(take)
    assert tokens == ["ya29.fake-token-1"] * 8
    assert creds.refreshes == 1 == source.refreshes and creds.most_in_flight == 1
    assert "fake-token" not in repr(source)


async def test_token_source_reports_a_loader_failure() -> None:
    def load() -> FakeCredentials:
        raise TokenError("use_adc / credentials_file need google-auth: pip install 'llm-factory-gemini[vertex]'")

    source = TokenSource(load, request_factory=object)
    with pytest.raises(TokenError, match=r"llm-factory-gemini\[vertex\]"):
        await source.token()


async def test_a_service_account_file_with_real_google_auth(env: Env, tmp_path: Any) -> None:
    """google-auth itself: a key file whose token endpoint is a local server; the plugin gets a
    token through ``credentials_file`` and sends it (JWT grant, RFC 7523)."""
    pytest.importorskip("google.auth")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    grants: list[str] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        grants.append(form.get("grant_type", ""))
        return httpx.Response(200, json={"access_token": f"ya29.sa-token-{len(grants)}", "expires_in": 3600})

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    env.fake.tokens = {"ya29.sa-token-1"}
    with serve_handler(token_endpoint) as token_url:
        path = tmp_path / "sa.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "my-project",
                    "private_key_id": "key-1",
                    "private_key": pem.decode(),
                    "client_email": "gateway@my-project.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{token_url}/token",
                }
            )
        )
        config = vertex(env, use_adc=False, credentials_file=str(path))
        async with env.factory(config) as f:
            await f.chat_async("Hi")
            await f.chat_async("Hi")
    assert grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert [r.headers["authorization"] for r in env.fake.requests] == ["Bearer ya29.sa-token-1"] * 2


async def test_refreshed_tokens_replace_a_configured_key(env: Env, credentials: FakeCredentials) -> None:
    config = env.config(
        key="AIzaSy-express-key-0001",
        model=MODEL,
        vertex_project="my-project",
        use_adc=True,
        user_project="billing-project",
    )
    async with env.factory(config) as f:
        await f.chat_async("Hi")
    headers = env.fake.requests[-1].headers
    assert headers["authorization"] == "Bearer ya29.fake-token-1"
    assert "x-goog-api-key" not in headers
    assert headers["x-goog-user-project"] == "billing-project"
