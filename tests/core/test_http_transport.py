"""The built-in HTTP transports: ``aiohttp`` (the default when installed) and httpx's own must give
the same outcome for the same upstream behaviour, over a real socket: replies, streams, error
statuses, resets, stalls and timeouts. Also how the transport is chosen. (The reliability suite
runs with the default; ``LLM_FACTORY_HTTP_TRANSPORT=httpx pytest tests/reliability`` runs it with
httpx's.)"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import anyio
import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    ConfigurationError,
    LLMFactory,
    ModelConfig,
    RateLimitError,
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from llm_factory_core._provider import FAST_CLIENTS
from llm_factory_core._transports import TRANSPORT_ENV, new_client, transport_name
from llm_factory_core.providers import Provider, ProviderSettings
from llm_factory_core.testing import Fault, FaultyUpstream
from tests.core.raw_upstream import JSON, SSE, RawUpstream, completion, sse_chunk, whole

pytestmark = pytest.mark.anyio
pytest.importorskip("aiohttp")

TRANSPORTS = ["aiohttp", "httpx"]
TEXT = "one two three four five six"
RULES = {"m": Fault.ok(TEXT)}


@pytest.fixture
def upstream() -> Any:
    with FaultyUpstream(RULES) as server:
        yield server


def factory(upstream: FaultyUpstream, transport: str, **limits: float) -> LLMFactory:
    config = ModelConfig(
        provider="openai",
        model_name="m",
        api_base=upstream.base_url,
        api_key="sk-transport-test-0001",
        first_token_timeout=limits.get("first_token", 0.5),
        chunk_timeout=limits.get("chunk", 0.5),
        timeout=limits.get("timeout", 1.0),
        connect_timeout=1.0,
    )
    return LLMFactory(config, transport=transport, num_retries=0)


async def collect(f: LLMFactory) -> str:
    parts = []
    async for chunk in f.stream_async("hi"):
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
    return "".join(parts)


# -- choosing ---------------------------------------------------------------------------------


def test_auto_prefers_aiohttp_and_the_environment_can_say_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRANSPORT_ENV, raising=False)
    assert transport_name(None) == "aiohttp" == transport_name("auto")
    monkeypatch.setenv(TRANSPORT_ENV, "httpx")
    assert transport_name(None) == "httpx"
    assert transport_name("aiohttp") == "aiohttp"  # the argument wins over the environment


def test_an_unknown_transport_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="curl"):
        LLMFactory(ModelConfig(provider="openai", model_name="m", api_key="sk-x"), transport="curl")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_only_the_factorys_own_aiohttp_client_takes_the_fast_path(
    upstream: FaultyUpstream, transport: str
) -> None:
    async with factory(upstream, transport) as f:
        provider = next(iter(f.providers().values()))
        assert (provider.client in FAST_CLIENTS) is (transport == "aiohttp")
        assert (await f.chat_async("hi")).choices[0].message.content == TEXT
    config = ModelConfig(provider="openai", model_name="m", api_base=upstream.base_url, api_key="sk-x")
    async with httpx.AsyncClient() as client, LLMFactory(config, http_client=client) as user:
        assert next(iter(user.providers().values())).client not in FAST_CLIENTS  # its hooks and auth apply
        assert (await user.chat_async("hi")).choices[0].message.content == TEXT


# -- the same outcomes ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_replies_and_streams(upstream: FaultyUpstream, transport: str) -> None:
    async with factory(upstream, transport) as f:
        reply = await f.chat_async("hi")
        assert reply.choices[0].message.content == TEXT and reply.usage is not None
        assert await collect(f) == TEXT
    request = upstream.requests[-1]
    assert request.headers["authorization"] == "Bearer sk-transport-test-0001"
    assert request.path.endswith("/chat/completions") and request.body["stream"] is True


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_error_status_keeps_its_type_and_retry_after(upstream: FaultyUpstream, transport: str) -> None:
    upstream.set_rule("m", Fault.rate_limit(retry_after=7))
    async with factory(upstream, transport) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("hi")
    error = info.value.attempts[0].error
    assert isinstance(error, RateLimitError) and error.retry_after == 7


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_a_reset_is_a_connection_error_not_a_timeout(upstream: FaultyUpstream, transport: str, mode: str) -> None:
    upstream.set_rule("m", Fault.reset())
    async with factory(upstream, transport) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await (f.chat_async("hi") if mode == "chat" else collect(f))
    error = info.value.attempts[0].error
    assert isinstance(error, UpstreamConnectionError), error


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_silent_upstream_is_a_silent_timeout(upstream: FaultyUpstream, transport: str) -> None:
    upstream.set_rule("m", Fault.hang())
    async with factory(upstream, transport, timeout=0.4, first_token=0.3) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("hi")
        with pytest.raises(AllDeploymentsFailedError) as stream_info:
            await collect(f)
    for failure in (info.value, stream_info.value):
        error = failure.attempts[0].error
        assert isinstance(error, UpstreamTimeoutError) and error.silent


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_a_stream_broken_after_it_started_is_an_explicit_error(
    upstream: FaultyUpstream, transport: str, fault: str
) -> None:
    upstream.set_rule("m", Fault.cut(2, text=TEXT) if fault == "cut" else Fault.stall(2, text=TEXT))
    parts: list[str] = []
    async with factory(upstream, transport, chunk=0.2, timeout=2.0) as f:
        with pytest.raises(StreamInterruptedError):
            async for chunk in f.stream_async("hi"):
                parts.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(parts) == "one two "


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_slow_reader_gets_every_token_that_arrived_before_the_cut(
    upstream: FaultyUpstream, transport: str
) -> None:
    # aiohttp raises a broken connection before handing over the bytes buffered ahead of it; a
    # reader busy while the last tokens and the close arrive must still see those tokens.
    upstream.set_rule("m", Fault.cut(3, text=TEXT))
    parts: list[str] = []
    async with factory(upstream, transport, chunk=0.5, timeout=2.0) as f:
        with pytest.raises(StreamInterruptedError):
            async for chunk in f.stream_async("hi"):
                parts.extend(c.delta.content or "" for c in chunk.choices)
                await anyio.sleep(0.05)  # the rest of the body and the close arrive meanwhile
    assert "".join(parts) == "one two three "


def test_the_aiohttp_transport_reads_the_proxy_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_factory_core._aiohttp import AiohttpTransport

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.corp.example")
    transport = AiohttpTransport()
    assert transport.proxy("https://api.openai.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert transport.proxy("https://llm.corp.example/v1") is None
    assert transport.proxy("http://localhost:8000/v1") is None  # no http proxy configured, and bypassed
    monkeypatch.delenv("HTTPS_PROXY")
    assert transport.proxy("https://api.openai.com/v1") == "http://proxy.internal:3128"  # read once, cached
    assert AiohttpTransport(trust_env=False).proxy("https://api.openai.com/v1") is None


# -- the URL on the wire ----------------------------------------------------------------------

WIRE_TARGETS = [
    "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke",
    "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
    "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
    "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
    "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse",
    "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key=a%2Fb%3Ac",
]


class _SignsThePath(httpx.Auth):
    """What SigV4 does in essence: sign the path as the client built it; the server compares."""

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["x-signed-target"] = request.url.raw_path.decode("ascii")
        yield request


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("target", WIRE_TARGETS)
async def test_the_path_goes_on_the_wire_exactly_as_built(transport: str, target: str) -> None:
    # aiohttp re-normalised URLs it was handed as strings: `%3A` went out as `:`, so a SigV4
    # signature over `/model/...v2%3A0/invoke` no longer matched (403 InvalidSignatureException).
    with RawUpstream(whole(completion(), headers=JSON)) as up:
        client = new_client(transport)
        provider = Provider(ProviderSettings(model="m"), client=client, name="wire")
        try:
            await provider.post_json(up.url + target, {})  # the fast path on aiohttp
            async with provider.open_stream(up.url + target, {}):  # the fast path's streams
                pass
            await provider.post_json(up.url + target, {}, auth=_SignsThePath())  # httpx's client path
        finally:
            await client.aclose()
    assert [r.target for r in up.requests] == [target.encode()] * 3
    assert up.requests[2].headers["x-signed-target"] == target


# -- closing ----------------------------------------------------------------------------------

_TWO_RUNS = """
import asyncio, gc, sys
from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import Fault, FaultyUpstream

with FaultyUpstream({"m": Fault.ok("hello")}) as up:
    config = ModelConfig(provider="openai", model_name="m", api_base=up.base_url, api_key="sk-close-test-0001")
    factory = LLMFactory(config, transport=sys.argv[1])
    for _ in range(2):
        print(asyncio.run(factory.chat_async("hi")).choices[0].message.content)
        gc.collect()
    factory.close()
    gc.collect()
print("done")
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_factory_used_across_asyncio_runs_closes_its_sessions(transport: str) -> None:
    # Each asyncio.run ends its loop; the factory's session on that loop must close with it, or
    # aiohttp reports "Unclosed client session" / "Unclosed connector" (at exit or at the next run).
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", _TWO_RUNS, transport],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(pathlib.Path(__file__).parents[2]),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hello", "hello", "done"]
    for sign in ("Unclosed", "ResourceWarning", "Exception ignored", "Traceback"):
        assert sign not in done.stderr, done.stderr


# -- proxies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_a_proxy_from_the_environment_carries_the_call_on_aiohttp(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The core's HTTP/1.1 client has no proxy support: a proxied origin goes through aiohttp's
    # session, which sends the absolute URL to the proxy (here a loopback server that answers).
    reply = completion("via the proxy") if mode == "chat" else sse_chunk({"content": "via the proxy"}, "stop")
    with RawUpstream(
        whole(reply + (b"data: [DONE]\n\n" if mode == "stream" else b""), headers=JSON if mode == "chat" else SSE)
    ) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        config = ModelConfig(
            provider="openai", model_name="m", api_base="http://upstream.invalid/v1", api_key="sk-proxy-0001"
        )
        async with LLMFactory(config, transport="aiohttp", num_retries=0) as f:
            if mode == "chat":
                text = (await f.chat_async("hi")).choices[0].message.content
            else:
                text = "".join([c.choices[0].delta.content or "" async for c in f.stream_async("hi") if c.choices])
    assert text == "via the proxy"
    (request,) = proxy.requests
    assert request.line == b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1"


async def test_credentials_in_the_url_become_basic_auth_on_aiohttp() -> None:
    # As httpx does; the core's HTTP/1.1 client does not, so such a URL goes through aiohttp.
    from llm_factory_core._aiohttp import AiohttpTransport

    with RawUpstream(whole(completion(), headers=JSON)) as upstream:
        url = upstream.url.replace("http://", "http://user:pass@") + "/v1/chat/completions"
        transport = AiohttpTransport()
        try:
            status, _, _ = await transport.post(
                url, b"{}", {}, httpx.Timeout(5.0), max_body=1 << 20, max_error_body=1 << 10
            )
        finally:
            await transport.aclose()
    assert status == 200
    (request,) = upstream.requests
    assert request.headers["authorization"] == "Basic dXNlcjpwYXNz"  # user:pass
