"""The gateway's uvicorn protocol (``_protocol.GatewayHttpProtocol``) and the request path under
it leave no garbage-collector work per request."""

from __future__ import annotations

import httpx

from llm_factory_core import ModelConfig

from .helpers import UPSTREAM_KEY, FakeOpenAIServer, garbage_left_by, serving_factory

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_requests_leave_no_reference_cycles(http_transport: str) -> None:
    # The splice extension once held the request's cycle, whose scope held the extension: every
    # request's objects (~12) waited for a collection, and the collections (10-15 ms, every ~1,300
    # requests at one request at a time) were the latency tail. Over real sockets, on both
    # transports: an in-memory upstream's replies are closed before they are sent.
    with FakeOpenAIServer() as upstream:
        config = ModelConfig(provider="openai", model_name="gpt-4o", api_key=UPSTREAM_KEY, api_base=upstream.url)
        with (
            serving_factory(http_transport, config, num_retries=0) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,  # one kept-alive connection
        ):

            def requests() -> None:
                for _ in range(10):
                    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
                    streamed = client.post("/v1/chat/completions", json={**BODY, "stream": True})
                    assert streamed.content.endswith(b"data: [DONE]\n\n")

            requests()  # warm: pools, caches and lazily built state are not garbage
            assert garbage_left_by(requests) == []
