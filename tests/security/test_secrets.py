"""Every fault, with real-looking keys (an OpenAI project key, an Azure 32-hex key, a client
key): none of them, nor any 8+ character piece, may appear in logs (DEBUG, uvicorn's access and
error logs included), error replies, exceptions (message, repr, traceback), ``/v1/providers/status``,
``/metrics`` or ``factory.status()``. The upstream did receive them (the test would be vacuous
otherwise)."""

from __future__ import annotations

import traceback

import httpx
import pytest

from llm_factory_core import LLMFactory, LLMFactoryError
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import AZURE_KEY, CLIENT_KEY, OPENAI_KEY, LoggingGateway, all_log_text, configs, leaks

LIMITS = {"first_token_timeout": 0.15, "chunk_timeout": 0.2, "timeout": 0.3}
ROUTER = {"fallbacks": {"primary": ["backup"]}, "num_retries": 0, "cooldown": 0.0, "disable_for": 0.0}


def echo(status: int, key: str) -> Fault:
    """An upstream that echoes the whole key in its error message (some do)."""
    message = f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com."
    return Fault.error(
        status, {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    )


FAULTS = [
    Fault.ok(),
    Fault.rate_limit(),
    Fault.server_error(500),
    Fault.server_error(503),
    Fault.error(401),
    Fault.error(403),
    Fault.context_length(),
    Fault.content_filter(),
    Fault.reset(),
    Fault.hang(),
    Fault.slow_first_token(5),
    Fault.cut(2),
    Fault.cut(2, reset=True),
    Fault.stall(2),
    Fault.malformed_event(1),
    Fault.no_done(),
    "echo-401",
    "echo-400",
    Fault.rate_limit(retry_after=30),  # last: it cools both deployments down for the rest of the test
]
KINDS = {f.kind for f in FAULTS if isinstance(f, Fault)}


def set_fault(upstream: FaultyUpstream, fault: Fault | str) -> None:
    if isinstance(fault, str):
        status = int(fault.split("-")[1])
        upstream.set_rule("primary", echo(status, OPENAI_KEY))
        upstream.set_rule("backup", echo(status, AZURE_KEY))
    else:
        upstream.set_rule("primary", fault)
        upstream.set_rule("backup", fault)


def test_no_secret_leaks_through_the_gateway(upstream: FaultyUpstream, debug_logs: pytest.LogCaptureFixture) -> None:
    factory = LLMFactory(configs(upstream, **LIMITS), **ROUTER)
    seen: list[str] = []
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    with (
        LoggingGateway(factory, log_requests=True) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10) as client,
    ):
        for fault in FAULTS:
            set_fault(upstream, fault)
            for stream in (False, True):
                body = {"model": "primary", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
                response = client.post("/v1/chat/completions", json=body, headers=auth)
                seen.append(f"{fault!r} stream={stream}: {response.status_code} {response.headers} {response.text}")
        seen.append(client.get("/v1/providers/status", headers=auth).text)
        seen.append(client.get("/metrics", headers=auth).text)
        seen.append(client.get("/v1/models", headers={"authorization": "Bearer wrong-" + CLIENT_KEY[6:20]}).text)
        seen.append(client.get("/ready").text)
    seen.append(repr(factory.status()) + "".join(s.model_dump_json() for s in factory.status()))
    factory.close()
    text = "\n".join(seen)
    logs = all_log_text(debug_logs)
    assert "uvicorn.access" in logs and "llm_factory_server" in logs  # the logs were captured
    assert "/v1/chat/completions" in logs
    assert leaks(text) == [], text[:2000]
    assert leaks(logs) == [], [line for line in logs.splitlines() if leaks(line)][:5]
    assert {r.fault for r in upstream.requests} == KINDS | {"error"}  # every fault was served
    # The upstream did get the real keys, each in its own header.
    assert {r.key for r in upstream.requests} == {OPENAI_KEY, AZURE_KEY}
    assert all(
        r.headers.get("authorization") == f"Bearer {OPENAI_KEY}" for r in upstream.requests if r.model == "primary"
    )
    assert all(r.headers.get("api-key") == AZURE_KEY for r in upstream.requests if r.model == "backup")


@pytest.mark.anyio
async def test_no_secret_leaks_through_the_library(
    upstream: FaultyUpstream, debug_logs: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    async with LLMFactory(configs(upstream, **LIMITS), **ROUTER) as factory:
        for fault in FAULTS:
            set_fault(upstream, fault)
            for stream in (False, True):
                try:
                    if stream:
                        async with factory.stream_async("hi", model="primary") as chunks:
                            seen.extend([repr(c) async for c in chunks])
                    else:
                        seen.append(repr(await factory.chat_async("hi", model="primary")))
                except LLMFactoryError as exc:
                    seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
                    seen += [repr(getattr(exc, "attempts", None)), repr(exc.__dict__)]
        seen.append(repr(factory.status()) + repr(factory.config) + repr(factory.deployments))
    text = "\n".join(seen)
    assert {r.fault for r in upstream.requests} == KINDS | {"error"}
    assert "Incorrect API key provided" in text  # the echoing faults were reached
    assert leaks(text) == [], [line for line in text.splitlines() if leaks(line)][:5]
    assert leaks(all_log_text(debug_logs)) == []
