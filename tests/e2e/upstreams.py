"""Fake upstreams for the README examples: one transport that routes by host to the fake of each
provider the examples configure.

* Azure / OpenAI / OpenAI-compatible hosts: ``tests/plugins/openai/fake_openai.FakeOpenAI`` (validated
  with the official ``openai`` SDK there).
* ``api.deepseek.com``: ``tests/plugins/deepseek/fake_deepseek.FakeDeepSeek`` (validated there).
* ``dashscope.aliyuncs.com``: ``FakeDashScope`` below, a small fake of DashScope's native text
  generation API (reference §3.1-3.4: ``output.choices`` with ``result_format: message``, SSE with
  ``id:``/``event:result``/``:HTTP_STATUS/200`` lines, ``finish_reason`` the string ``"null"`` until
  the end, cumulative usage, no ``[DONE]``; error body ``{code, message, request_id}``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from llm_factory_core import PluginError
from llm_factory_core.providers import PluginRegistry
from tests.plugins.openai.fake_openai import FakeOpenAI

__all__ = ["FakeDashScope", "Upstreams", "require_providers"]

DASHSCOPE_TEXT_PATH = "/api/v1/services/aigc/text-generation/generation"


def require_providers(*keys: str) -> None:
    """Skip (not fail) while another helper's provider plugin is still an empty stub; once it
    registers its provider the test runs for real. A fresh registry is asked so that an earlier
    failed import in this process is not remembered."""
    registry = PluginRegistry()
    for key in keys:
        if key not in registry.installed_provider_keys():
            pytest.skip(f"provider {key!r} is not installed")
        try:
            registry.provider(key)
        except PluginError as exc:
            pytest.skip(f"provider {key!r} is not registered yet: {exc}")


@dataclass
class FakeDashScope:
    text: str = "你好！我是通义千问。"
    keys: set[str] | None = None
    """Accepted keys (None: any non-empty key)."""
    requests: list[httpx.Request] = field(default_factory=list)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        rid = str(uuid.uuid4())
        if request.method != "POST" or request.url.path != DASHSCOPE_TEXT_PATH:
            return _error(404, "NotFound", "Not Found", rid)
        auth = request.headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not key or (self.keys is not None and key not in self.keys):
            return _error(401, "InvalidApiKey", "Invalid API-key provided.", rid)
        body = json.loads(request.content)
        messages = (body.get("input") or {}).get("messages")
        if not body.get("model") or not messages:
            return _error(400, "InvalidParameter", "Input should be a valid input", rid)
        params = body.get("parameters") or {}
        message_format = params.get("result_format") == "message"
        if request.headers.get("x-dashscope-sse") == "enable":
            return self._stream(rid, message_format, bool(params.get("incremental_output")))
        usage = {"total_tokens": 8 + len(self.text), "output_tokens": len(self.text), "input_tokens": 8}
        if message_format:
            output: dict[str, Any] = {
                "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": self.text}}]
            }
        else:
            output = {"finish_reason": "stop", "text": self.text}
        return _json({"output": output, "usage": usage, "request_id": rid}, 200, rid)

    def _stream(self, rid: str, message_format: bool, incremental: bool) -> httpx.Response:
        pieces = [self.text[i : i + 3] for i in range(0, len(self.text), 3)] + [""]
        events = []
        sent = ""
        for n, piece in enumerate(pieces, 1):
            sent += piece
            content = piece if incremental else sent
            finish = "stop" if n == len(pieces) else "null"
            usage = {"total_tokens": 8 + len(sent), "input_tokens": 8, "output_tokens": len(sent)}
            if message_format:
                output: dict[str, Any] = {
                    "choices": [{"message": {"content": content, "role": "assistant"}, "finish_reason": finish}]
                }
            else:
                output = {"finish_reason": finish, "text": content}
            data = json.dumps({"output": output, "usage": usage, "request_id": rid}, ensure_ascii=False)
            events.append(f"id:{n}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n")
        return httpx.Response(
            200,
            content="".join(events).encode(),
            headers={"content-type": "text/event-stream;charset=UTF-8", "x-request-id": rid},
        )


def _json(data: Any, status: int, rid: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(data, ensure_ascii=False).encode(),
        headers={"content-type": "application/json", "x-request-id": rid},
    )


def _error(status: int, code: str, message: str, rid: str) -> httpx.Response:
    return _json({"code": code, "message": message, "request_id": rid}, status, rid)


class Upstreams:
    """``transport=upstreams.transport``: DashScope and DeepSeek hosts go to their fakes, every
    other host to the OpenAI/Azure fake."""

    def __init__(self, openai: FakeOpenAI | None = None, deepseek_keys: tuple[str, ...] = ("key3",)) -> None:
        from tests.plugins.deepseek.fake_deepseek import FakeDeepSeek

        self.openai = openai or FakeOpenAI()
        self.dashscope = FakeDashScope()
        self.deepseek = FakeDeepSeek(keys=deepseek_keys)
        self.transport = httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host.startswith("dashscope"):
            return self.dashscope(request)
        if host == "api.deepseek.com":
            return self.deepseek(request)
        return self.openai(request)
