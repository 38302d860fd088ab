"""Helpers for core tests: deployments of the openai plugin on fake hosts a.test, b.test, ..."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import (
    MockUpstream,
    json_response,
    openai_chunks,
    openai_completion,
    sse_response,
)


def cfg(host: str, model_name: str = "gpt-4o", **kw: Any) -> ModelConfig:
    kw.setdefault("api_key", f"sk-{host}-secret-0000{host[-1]}")
    return ModelConfig(provider="openai", model_name=model_name, api_base=f"https://{host}.test/v1", **kw)


def host_of(request: httpx.Request) -> str:
    return request.url.host.removesuffix(".test")


def ok(text: str = "ok") -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: json_response(openai_completion(f"{text}"))


def error(status: int, code: str | None = None, headers: dict[str, str] | None = None, message: str = "boom"):
    def reply(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        return json_response(body, status, headers)

    return reply


class Hosts:
    """Routes requests by host to per-host behaviours (a callable or a list consumed in order)."""

    def __init__(self, **behaviours: Any) -> None:
        self.behaviours = behaviours
        self.upstream = MockUpstream(self.route)

    def route(self, request: httpx.Request) -> Any:
        behaviour = self.behaviours[host_of(request)]
        if isinstance(behaviour, list):
            behaviour = behaviour.pop(0) if len(behaviour) > 1 else behaviour[0]
        return behaviour(request) if callable(behaviour) else behaviour

    @property
    def hosts(self) -> list[str]:
        return [host_of(r) for r in self.upstream.requests]

    def factory(self, configs: list[ModelConfig], **kw: Any) -> LLMFactory:
        kw.setdefault("retry_backoff", 0.0)
        kw.setdefault("cooldown", 0.01)
        return LLMFactory(configs, transport=self.upstream.transport, **kw)


def text_reply(text: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: json_response(openai_completion(text))


def stream_reply(pieces: list[str], **kw: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: sse_response(openai_chunks(pieces), **kw)
