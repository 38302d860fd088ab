"""Entra ID tokens that expire: cached until five minutes before ``expires_on``, refreshed in the
background while still valid, awaited (one refresh for every waiting request) once expired; with
duck-typed credentials (azure-identity's ``get_token(scope) -> AccessToken`` protocol), no network.
End to end: a deployment configured with a credential sends a new token after expiry, over real
sockets on both transports."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from llm_factory_core import AllDeploymentsFailedError, ConfigurationError, LLMFactory, ModelConfig
from llm_factory_core.testing import serve_handler
from llm_factory_openai import _entra
from llm_factory_openai._entra import COGNITIVE_SERVICES_SCOPE, TokenSource, from_credential, from_provider

from .fake_openai import FakeOpenAI


class AccessToken(NamedTuple):
    """azure-core's ``AccessToken`` shape (``azure.core.credentials.AccessToken``)."""

    token: str
    expires_on: int


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(_entra, "now", fake)
    yield fake


class ExpiringCredential:
    """Issues ``entra-token-000N`` valid for ``lifetime`` seconds from the (fake) clock; sync, like
    azure-identity's credentials (so it runs in a worker thread); can be made slow or failing."""

    def __init__(self, clock: Clock, lifetime: float = 3600, delay: float = 0.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.delay = delay
        self.calls: list[tuple[str, ...]] = []
        self.fail: Exception | None = None
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._release.set()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with self._lock:
            self.calls.append(scopes)
            n = len(self.calls)
        self._release.wait(5)
        if self.fail is not None:
            raise self.fail
        return AccessToken(f"entra-token-{n:04d}-abcdefgh", int(self.clock.now + self.lifetime))

    def hold(self) -> None:
        self._release.clear()

    def release(self) -> None:
        self._release.set()


@pytest.mark.anyio
async def test_a_token_is_reused_until_five_minutes_before_it_expires(clock: Clock) -> None:
    credential = ExpiringCredential(clock)
    source = TokenSource(from_credential(credential))
    assert await source.token() == "entra-token-0001-abcdefgh"
    clock.now += 3600 - 301
    assert await source.token() == "entra-token-0001-abcdefgh"
    assert credential.calls == [(COGNITIVE_SERVICES_SCOPE,)]


@pytest.mark.anyio
async def test_after_expiry_the_next_call_gets_a_new_token(clock: Clock) -> None:
    credential = ExpiringCredential(clock)
    source = TokenSource(from_credential(credential, "api://custom/.default"))
    await source.token()
    clock.now += 3601
    assert await source.token() == "entra-token-0002-abcdefgh"
    assert credential.calls == [("api://custom/.default",), ("api://custom/.default",)]


@pytest.mark.anyio
async def test_concurrent_calls_without_a_valid_token_share_one_refresh(clock: Clock) -> None:
    credential = ExpiringCredential(clock)
    source = TokenSource(from_credential(credential))
    credential.hold()
    waiting = [asyncio.create_task(source.token()) for _ in range(20)]
    await asyncio.sleep(0.05)
    credential.release()
    tokens = await asyncio.gather(*waiting)
    assert set(tokens) == {"entra-token-0001-abcdefgh"}
    assert len(credential.calls) == 1 and source.refreshes == 1


@pytest.mark.anyio
async def test_inside_the_margin_one_background_refresh_runs_while_the_old_token_serves(clock: Clock) -> None:
    credential = ExpiringCredential(clock)
    source = TokenSource(from_credential(credential))
    await source.token()
    clock.now += 3600 - 120  # two minutes left: still valid, time to refresh
    credential.hold()
    served = await asyncio.gather(*(source.token() for _ in range(10)))
    assert set(served) == {"entra-token-0001-abcdefgh"}  # nobody waited for the refresh
    credential.release()
    for _ in range(100):
        if source.refreshes == 2 and await source.token() == "entra-token-0002-abcdefgh":
            break
        await asyncio.sleep(0.01)
    assert await source.token() == "entra-token-0002-abcdefgh"
    assert len(credential.calls) == 2


@pytest.mark.anyio
async def test_a_failed_refresh_raises_and_the_next_call_tries_again(clock: Clock) -> None:
    credential = ExpiringCredential(clock)
    credential.fail = RuntimeError("ManagedIdentityCredential: no endpoint")
    source = TokenSource(from_credential(credential))
    with pytest.raises(RuntimeError, match="no endpoint"):
        await source.token()
    credential.fail = None
    assert await source.token() == "entra-token-0002-abcdefgh"


def jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'aud': 'https://cognitiveservices.azure.com', 'exp': int(exp)})}.c2ln"


@pytest.mark.anyio
async def test_a_provider_returning_a_jwt_is_cached_until_its_exp(clock: Clock) -> None:
    issued: list[str] = []

    async def provider() -> str:
        issued.append(jwt(clock.now + 3600))
        return issued[-1]

    source = TokenSource(from_provider(provider))
    first = await source.token()
    clock.now += 1000
    assert await source.token() == first and len(issued) == 1
    clock.now += 3000
    assert await source.token() != first and len(issued) == 2


@pytest.mark.anyio
async def test_a_provider_returning_an_opaque_token_is_asked_every_time(clock: Clock) -> None:
    calls = []

    def provider() -> str:
        calls.append(1)
        return f"opaque-token-{len(calls)}"

    source = TokenSource(from_provider(provider))
    assert [await source.token() for _ in range(3)] == ["opaque-token-1", "opaque-token-2", "opaque-token-3"]


@pytest.mark.anyio
async def test_a_provider_returning_nonsense_is_a_clear_error(clock: Clock) -> None:
    source = TokenSource(from_provider(lambda: 42))
    with pytest.raises(ValueError, match="azure_ad_token_provider returned int, not a token string"):
        await source.token()


# -- through LLMFactory, over real sockets ------------------------------------------------------


def azure_config(base: str, **auth: Any) -> ModelConfig:
    return ModelConfig(provider="openai", model_name="gpt-4o", api_base=base, api_version="2024-10-21", **auth)


@pytest.mark.anyio
async def test_the_second_call_after_expiry_sends_a_new_token(clock: Clock, http_transport: str) -> None:
    credential = ExpiringCredential(clock)
    fake = FakeOpenAI(text="ok")
    with serve_handler(fake) as base:
        async with LLMFactory(azure_config(base, azure_credential=credential), transport=http_transport) as f:
            await f.chat_async("Hi")
            await f.chat_async("Hi")
            clock.now += 3601
            await f.chat_async("Hi")
            chunks = [c async for c in f.stream_async("Hi")]
    assert chunks
    assert [r.headers["authorization"] for r in fake.requests] == [
        "Bearer entra-token-0001-abcdefgh",
        "Bearer entra-token-0001-abcdefgh",
        "Bearer entra-token-0002-abcdefgh",
        "Bearer entra-token-0002-abcdefgh",
    ]
    assert all("api-key" not in r.headers for r in fake.requests)


@pytest.mark.anyio
async def test_concurrent_calls_after_expiry_trigger_one_refresh(clock: Clock, http_transport: str) -> None:
    credential = ExpiringCredential(clock)
    fake = FakeOpenAI(text="ok")
    with serve_handler(fake) as base:
        async with LLMFactory(azure_config(base, azure_credential=credential), transport=http_transport) as f:
            await f.chat_async("Hi")
            clock.now += 3601
            await asyncio.gather(*(f.chat_async("Hi") for _ in range(8)))
    assert len(credential.calls) == 2
    assert {r.headers["authorization"] for r in fake.requests[1:]} == {"Bearer entra-token-0002-abcdefgh"}


@pytest.mark.anyio
async def test_a_failing_credential_fails_over_without_showing_the_token(clock: Clock, http_transport: str) -> None:
    credential = ExpiringCredential(clock)
    fake = FakeOpenAI(text="from the key")
    with serve_handler(fake) as base:
        configs = [
            azure_config(base, azure_credential=credential, name="entra"),
            azure_config(base, api_key="azure-key-cccccccccccc3333", name="keyed"),
        ]
        async with LLMFactory(configs, transport=http_transport, strategy="first_available") as f:
            await f.chat_async("Hi")
            clock.now += 3601
            credential.fail = RuntimeError("IMDS endpoint unavailable")
            reply = await f.chat_async("Hi")
            status = {s.name: s for s in f.status()}
    assert reply.choices[0].message.content == "from the key"
    assert status["entra"].state == "cooldown"
    assert "Entra ID token" in (status["entra"].last_error or "")
    assert "entra-token" not in repr(f.status())


@pytest.mark.anyio
async def test_a_failing_credential_says_what_failed(clock: Clock, http_transport: str) -> None:
    credential = ExpiringCredential(clock)
    credential.fail = RuntimeError("DefaultAzureCredential failed to retrieve a token")
    with serve_handler(FakeOpenAI()) as base:
        async with LLMFactory(
            azure_config(base, azure_credential=credential), transport=http_transport, num_retries=0
        ) as f:
            with pytest.raises(AllDeploymentsFailedError, match="could not get an Entra ID token: RuntimeError"):
                await f.chat_async("Hi")


@pytest.mark.anyio
async def test_a_token_provider_callable_from_code(clock: Clock, http_transport: str) -> None:
    fake = FakeOpenAI()
    tokens = iter([jwt(clock.now + 3600), jwt(clock.now + 7200)])
    with serve_handler(fake) as base:
        config = azure_config(base, azure_ad_token_provider=lambda: next(tokens))
        async with LLMFactory(config, transport=http_transport) as f:
            await f.chat_async("Hi")
            await f.chat_async("Hi")
            clock.now += 3600
            await f.chat_async("Hi")
    first, second, third = (r.headers["authorization"] for r in fake.requests)
    assert first == second != third


def test_azure_ad_auth_uses_default_azure_credential_with_the_cognitive_services_scope(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[ExpiringCredential] = []

    def default_credential() -> ExpiringCredential:
        created.append(ExpiringCredential(clock))
        return created[-1]

    identity = types.ModuleType("azure.identity")
    identity.DefaultAzureCredential = default_credential  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure", types.ModuleType("azure"))
    monkeypatch.setitem(sys.modules, "azure.identity", identity)
    fake = FakeOpenAI()
    with LLMFactory(
        ModelConfig(
            provider="openai",
            model_name="gpt-4o",
            api_base="https://res.openai.azure.com",
            api_version="2024-10-21",
            azure_ad_auth=True,
        ),
        transport=fake.transport,
    ) as f:
        f.chat("Hi")
    assert len(created) == 1 and created[0].calls == [(COGNITIVE_SERVICES_SCOPE,)]
    assert fake.requests[0].headers["authorization"] == "Bearer entra-token-0001-abcdefgh"


def test_azure_ad_auth_without_azure_identity_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # an import of it fails
    config = ModelConfig(
        provider="openai", model_name="gpt-4o", api_base="https://res.openai.azure.com", api_version="2024-10-21"
    )
    with pytest.raises(ConfigurationError, match=r"pip install 'llm-factory-openai\[azure\]'"):
        LLMFactory(config.model_copy(update={"azure_ad_auth": True}))


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"azure_ad_token": "static-token-0001", "azure_ad_auth": True}, "choose one Entra ID token source"),
        ({"azure_credential": object()}, "azure_credential must have get_token"),
    ],
)
def test_bad_entra_configuration_is_a_clear_error(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LLMFactory(azure_config("https://res.openai.azure.com", **auth))


@pytest.mark.anyio
async def test_entra_wins_over_an_api_key(clock: Clock, http_transport: str) -> None:
    fake = FakeOpenAI()
    credential = ExpiringCredential(clock)
    with serve_handler(fake) as base:
        config = azure_config(base, api_key="azure-key-eeeeeeeeeeee5555", azure_credential=credential)
        async with LLMFactory(config, transport=http_transport) as f:
            await f.chat_async("Hi")
    (seen,) = fake.requests
    assert seen.headers["authorization"] == "Bearer entra-token-0001-abcdefgh" and "api-key" not in seen.headers
