"""Running the real gateway (uvicorn on 127.0.0.1 in a thread) over fake OpenAI upstreams.

* ``Upstream``: an ``httpx.MockTransport`` fake of OpenAI's chat completions built on the core's
  wire builders (``llm_factory_core.testing``, validated against the ``openai`` SDK by the openai
  plugin's tests); each deployment has its own host, so tests script each one separately.
* ``FakeOpenAIServer``: the same replies on a real socket, for gateways started as subprocesses.
* ``ServerThread``: uvicorn serving an app on a free port; ``stop()`` is its graceful shutdown.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import openai
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import json_response, openai_chunks, openai_completion, serve_handler, sse_body
from llm_factory_server import ServerSettings, create_app
from llm_factory_server._protocol import uvicorn_options

UPSTREAM_KEY = "sk-upstream-secret-key-0001"
CLIENT_KEY = "client-key-secret-0042"

Handler = Callable[[httpx.Request], Any]


def error_reply(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return json_response(body, status, headers)


class Upstream:
    """Scripted fake upstreams by host: ``up.script("a", handler, times=1)``; unscripted requests
    get a normal reply (text, or a stream when the body asks for one)."""

    def __init__(self, text: str = "Hello from upstream", pieces: tuple[str, ...] = ("Hel", "lo", "!")) -> None:
        self.text = text
        self.pieces = pieces
        self.requests: list[httpx.Request] = []
        self._scripts: dict[str, list[Handler]] = {}
        self.transport = httpx.MockTransport(self._handle)

    def script(self, host: str, handler: Handler, *, times: int = 1) -> Upstream:
        self._scripts.setdefault(f"{host}.test", []).extend([handler] * times)
        return self

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def default(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = openai_chunks(self.pieces, include_usage=include_usage)
            return httpx.Response(200, content=sse_body(events), headers={"content-type": "text/event-stream"})
        return json_response(openai_completion(self.text))

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        queue = self._scripts.get(request.url.host)
        handler = queue.pop(0) if queue else self.default
        reply = handler(request)
        if hasattr(reply, "__await__"):
            reply = await reply
        if isinstance(reply, BaseException):
            raise reply
        return reply


def deployment(host: str = "a", model_name: str = "gpt-4o", **extra: Any) -> ModelConfig:
    return ModelConfig(
        provider="openai",
        model_name=model_name,
        api_key=UPSTREAM_KEY,
        api_base=f"https://{host}.test/v1",
        name=f"{host}-{model_name}",
        **extra,
    )


def make_factory(upstream: Upstream, *configs: ModelConfig, **router: Any) -> LLMFactory:
    router.setdefault("num_retries", 0)
    return LLMFactory(list(configs) or [deployment()], transport=upstream.transport, **router)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread (its own event loop)."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config.setdefault("timeout_graceful_shutdown", 5)
        gateway = getattr(getattr(app, "state", None), "llm_factory_gateway", None)
        if gateway is not None:  # the gateway's own connection limits, as ``llm-factory serve`` runs it
            for key, value in uvicorn_options(gateway.settings).items():
                config.setdefault(key, value)
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, **config))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[ServerThread]:
    server = ServerThread(app, **config).start()
    try:
        yield server
    finally:
        server.stop()


GATEWAY_MODULES = ("uvicorn.", "llm_factory_server.", "llm_factory_core.")
"""Where the gateway's own objects come from (``garbage_left_by``)."""


def garbage_left_by(run: Callable[[], None], modules: tuple[str, ...] = GATEWAY_MODULES) -> list[str]:
    """The types (from ``modules``) of the objects ``run`` left in reference cycles: each one is
    freed only by the garbage collector, whose pauses become the gateway's latency tail."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage
    try:
        run()
        gc.collect()
        kinds = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return sorted({kind for kind in kinds if kind.startswith(modules)})


@contextmanager
def serving_factory(transport: str, *configs: ModelConfig, **router: Any) -> Iterator[ServerThread]:
    """The gateway (default settings) over a factory of ``configs`` on ``transport``; the server
    stopped and the factory closed after."""
    factory = LLMFactory(list(configs), transport=transport, **router)
    try:
        with serving(create_app(factory, settings=ServerSettings())) as server:
            yield server
    finally:
        factory.close()


@contextmanager
def gateway_over(
    handler: Callable[[httpx.Request], httpx.Response],
    http_transport: str,
    *,
    paths: tuple[str, ...] = ("",),
    router: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[ServerThread]:
    """The gateway (``settings``) over openai deployments of ``gpt-4o``, one per path under the
    upstream that answers with ``handler`` on a real socket; no retries, no cooldown (``router``:
    more router settings)."""
    with serve_handler(handler) as base:
        configs = [
            ModelConfig(provider="openai", model_name="gpt-4o", api_key="sk-up-0001", api_base=f"{base}{p}/v1")
            for p in paths
        ]
        factory = LLMFactory(configs, transport=http_transport, num_retries=0, cooldown=0.0, **(router or {}))
        server = ServerThread(create_app(factory, settings=ServerSettings(**settings))).start()
        try:
            yield server
        finally:
            server.stop()
            factory.close()


# -- a fake OpenAI upstream on a real socket (for gateways run as subprocesses) ---------------------


class FakeOpenAIServer:
    """OpenAI's chat completions on 127.0.0.1. ``delay`` sleeps before each stream event, so a
    stream can be caught in flight."""

    def __init__(self, *, delay: float = 0.0, pieces: tuple[str, ...] = ("One", " two", " three")) -> None:
        self.delay = delay
        self.pieces = pieces
        self.bodies: list[dict[str, Any]] = []
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = ServerThread(app)
        self.url = f"{self._server.url}/v1"

    async def _chat(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
            return JSONResponse({"error": {"message": "bad key", "type": "invalid_request_error"}}, 401)
        body = await request.json()
        self.bodies.append(body)
        if not body.get("stream"):
            return JSONResponse(openai_completion("Hello from a real socket"))

        async def events() -> AsyncIterator[bytes]:
            for event in openai_chunks(self.pieces):
                if self.delay:
                    await anyio.sleep(self.delay)
                yield sse_body([event], done=False)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def __enter__(self) -> FakeOpenAIServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any provider or llm-factory variable (the developer's own keys
    must not leak into a test), plus ``extra``."""
    prefixes = ("OPENAI", "QWEN", "DEEPSEEK", "CLAUDE", "GEMINI", "LLM_FACTORY", "AZURE", "DASHSCOPE", "AWS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


PYTHON = sys.executable


OPEN_CLIENTS: list[openai.OpenAI] = []
"""Closed after each test by the ``close_clients`` fixture."""


def client(server: ServerThread, key: str = "any-key", **kwargs: Any) -> openai.OpenAI:
    sdk = openai.OpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0, **kwargs)
    OPEN_CLIENTS.append(sdk)
    return sdk


def async_client(server: ServerThread, key: str = "any-key") -> openai.AsyncOpenAI:
    """Close it with ``await sdk.close()`` in the test."""
    return openai.AsyncOpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0)
