"""The core's conformance kit, in both of the plugin's modes, against the DashScope fake."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx

from llm_factory_core.testing import ProviderConformance
from llm_factory_qwen import QwenProvider

from .fake_dashscope import ERRORS, KEY, FakeDashScope, Turn

KIND_TO_FAKE = {
    "rate_limit": "rate_limit",
    "auth": "auth",
    "quota": "quota",
    "bad_request": "bad_request",
    "context_length": "context",
    "content_filter": "content_filter",
    "server": "server",
}


class TestNativeConformance(ProviderConformance):
    provider_cls = QwenProvider
    config = {"api_key": KEY, "api_base": "https://dashscope.aliyuncs.com/api/v1"}
    model_name = "qwen-turbo"

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        return FakeDashScope().respond(request, Turn(pieces=[text]))

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        return FakeDashScope().respond(request, Turn(pieces=pieces))

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        error = ERRORS[KIND_TO_FAKE[kind]]
        if kind == "rate_limit":
            error = dataclasses.replace(error, headers={"retry-after": "7"})
        if request.url.host == "probe.test":  # the kit's probe: is there such a reply at all?
            return httpx.Response(error.status)
        return FakeDashScope().respond(request, Turn(error=error))

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        # DashScope documents stop, length and tool_calls; no content_filter finish reason (its
        # moderation answers with a DataInspectionFailed error instead).
        if reason != "length":
            return None
        return FakeDashScope().respond(request, Turn(pieces=[text], finish="length"))

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        call = {"id": "call_29a8b1c0d4", "name": name, "arguments": json.dumps(arguments)}
        return FakeDashScope().respond(request, Turn(pieces=[], tool_calls=[call]))

    def reply_stream_error(self, request: httpx.Request) -> httpx.Response | None:
        return FakeDashScope().respond(request, Turn(stream_error=ERRORS["unavailable"], error_after=0))


class TestCompatibleConformance(TestNativeConformance):
    config = {"api_key": KEY, "api_base": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"}


class TestDefaultBaseConformance(TestNativeConformance):
    """No api_base: Beijing's native API."""

    config = {"api_key": KEY}
