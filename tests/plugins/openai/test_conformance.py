"""The provider conformance kit over the openai plugin, fed by the validated fake (``fake_openai``):
every hook the upstream really has, on OpenAI and on Azure."""

from __future__ import annotations

import json
from typing import Any

import httpx

from llm_factory_core.testing import ProviderConformance
from llm_factory_openai import OpenAIProvider

from .fake_openai import FakeOpenAI

# The kit's error kinds -> the fake's reply kinds. OpenAI has no content-filter error on chat
# prompts except the reasoning models' 400 ``invalid_prompt``; Azure's prompt filter is a 400
# ``content_filter``; Azure has no "out of credit" reply of its own (quota is a 429 rate limit).
OPENAI_ERRORS: dict[str, str | None] = {
    "rate_limit": "rate_limit",
    "auth": "auth",
    "quota": "quota",
    "bad_request": "bad_request",
    "context_length": "context_length",
    "content_filter": "invalid_prompt",
    "server": "server_error",
}
AZURE_ERRORS: dict[str, str | None] = {**OPENAI_ERRORS, "quota": None, "content_filter": "content_filter"}


class TestOpenAIConformance(ProviderConformance):
    provider_cls = OpenAIProvider
    config = {"api_key": "sk-test-secret-key-0001", "api_base": "https://api.openai.test/v1"}
    errors: dict[str, str | None] = OPENAI_ERRORS

    def _fake(self, kind: str, **options: Any) -> FakeOpenAI:
        return FakeOpenAI().push(kind, **options)

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        return self._fake("text", text=text)(request)

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        return self._fake("text", text="".join(pieces), pieces=pieces)(request)

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        fake_kind = self.errors[kind]
        return None if fake_kind is None else self._fake(fake_kind, retry_after="7")(request)

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        # OpenAI's own finish reasons: "length" at the token limit, "content_filter" when the
        # completion was filtered (API reference, the chat completion object).
        return self._fake("text", text=text, finish=reason)(request)

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        call = {"id": "call_conformance_1", "name": name, "arguments": json.dumps(arguments)}
        return self._fake("tools", calls=[call])(request)

    def reply_stream_error(self, request: httpx.Request) -> httpx.Response | None:
        # An error event as the first event of a 200 stream (OpenAI sends ``{"error": {...}}`` as
        # an SSE data line: openai-python _streaming.py raises APIError for it).
        return self._fake("stream_error", pieces=[])(request)


class TestAzureConformance(TestOpenAIConformance):
    config = {
        "api_key": "azure-secret-key-0001",
        "api_base": "https://res.openai.azure.com",
        "api_version": "2024-10-21",
    }
    errors = AZURE_ERRORS
