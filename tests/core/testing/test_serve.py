"""serve_handler puts an httpx handler on a real socket, whole or streamed, sync or async."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from llm_factory_core.testing import json_response, serve_handler


def test_a_sync_handler_with_a_whole_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response({"path": request.url.path, "echo": request.content.decode()}, 201, {"x-fake": "1"})

    with serve_handler(handler) as base:
        reply = httpx.post(f"{base}/v1/thing?q=1", content=b"hello", headers={"authorization": "Bearer k"})
    assert reply.status_code == 201 and reply.headers["x-fake"] == "1"
    assert reply.json() == {"path": "/v1/thing", "echo": "hello"}
    assert seen[0].headers["authorization"] == "Bearer k" and seen[0].url.params["q"] == "1"


def test_an_async_handler_streams_chunk_by_chunk() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    with serve_handler(handler) as base, httpx.stream("POST", f"{base}/s", content=b"{}") as reply:
        text = b"".join(reply.iter_raw()).decode()
    assert text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert reply.headers["content-type"] == "text/event-stream"
