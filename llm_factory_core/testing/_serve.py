"""Serve an ``httpx.MockTransport`` handler on a real socket, for SDKs that cannot take a transport.

Fakes of provider APIs are written once, as httpx handlers (``request -> httpx.Response``, sync or
async, with a whole or a streamed body); ``serve_handler`` puts the same fake on 127.0.0.1 so an
official SDK (boto3, dashscope, google-genai...) can be pointed at it by base URL.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

__all__ = ["serve_handler"]

_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


@contextmanager
def serve_handler(handler: Callable[[httpx.Request], Any]) -> Iterator[str]:
    """Run ``handler`` as an HTTP server on 127.0.0.1 (an ephemeral port); yields its base URL.

    An async handler or an async body runs on one private event loop thread; each chunk of a
    streamed body is written and flushed as it comes, and the connection then closes.
    """
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True, name="serve-handler-loop")
    loop_thread.start()

    def run(awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_await(awaitable), loop).result()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            port = self.server.server_address[1]  # type: ignore[index]
            request = httpx.Request(
                self.command, f"http://127.0.0.1:{port}{self.path}", headers=list(self.headers.items()), content=body
            )
            response = handler(request)
            if inspect.isawaitable(response):
                response = run(response)
            whole = isinstance(response.stream, httpx.SyncByteStream) or hasattr(response, "_content")
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if whole:
                content = response.read()
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                return
            self.send_header("connection", "close")  # a streamed body ends when the socket closes
            self.end_headers()
            self.close_connection = True
            chunks = response.stream.__aiter__()
            while True:
                try:
                    chunk = run(chunks.__anext__())
                except StopAsyncIteration:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join()
        loop.close()


async def _await(awaitable: Any) -> Any:
    return await awaitable
