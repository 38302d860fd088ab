"""A small OpenAI-compatible provider with switchable, realistic bugs: the conformance kit must
fail on each (tests/core/testing/test_conformance_kit.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from llm_factory_core import ChatCompletionChunk, ChatRequest, ProviderError
from llm_factory_core.providers import OpenAICompatibleProvider
from llm_factory_core.testing import json_response, openai_chunks, openai_completion, sse_response

log = logging.getLogger("sample_plugin")

BUGS: set[str] = set()
"""Which bugs the provider has right now (set by the generated test module)."""


class SampleProvider(OpenAICompatibleProvider):
    key = "sample"
    default_api_base = "https://api.sample.test/v1"
    extra: ClassVar[dict[str, Any]] = {}

    def chat_url(self) -> str:
        if "ignores_api_base" in BUGS:
            return "https://api.sample.test/v1/chat/completions"
        return super().chat_url()

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        if "logs_the_key" in BUGS and self.settings.api_key is not None:
            log.info("calling %s with key %s", self.name, self.settings.api_key.get_secret_value())
        if "mutates_the_request" in BUGS:
            request.messages.append({"role": "user", "content": "(sent through sample)"})
        return super().build_body(request, stream=False if "never_streams" in BUGS else stream)

    def map_finish_reason(self, reason: Any) -> Any:
        if "finish_is_always_stop" in BUGS and reason is not None:
            return "stop"
        return super().map_finish_reason(reason)

    def adapt_chunk(self, data: dict[str, Any], state: Any) -> dict[str, Any] | None:
        if "drops_stream_usage" in BUGS and not data.get("choices"):
            return None
        return super().adapt_chunk(data, state)

    async def decode_stream(self, response: httpx.Response) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for chunk in super().decode_stream(response):
                yield chunk
        except ProviderError:
            if "cut_stream_ends_quietly" not in BUGS:
                raise


def is_stream(request: httpx.Request) -> bool:
    return bool(json.loads(request.content).get("stream"))


def reply_text(request: httpx.Request, text: str) -> httpx.Response:
    return json_response(openai_completion(text))


def reply_stream(request: httpx.Request, pieces: list[str]) -> httpx.Response:
    body = json.loads(request.content)
    if not body.get("stream"):  # an upstream asked for no stream answers with one reply
        return json_response(openai_completion("".join(pieces)))
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return sse_response(openai_chunks(pieces, include_usage=usage))


def reply_finish(request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response:
    if stream:
        return sse_response(openai_chunks([text], finish_reason=reason))
    return json_response(openai_completion(text, finish_reason=reason))


TOOL_CALL = {"id": "call_abc123", "type": "function", "function": {"name": "", "arguments": ""}}


def reply_tool_call(request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool) -> httpx.Response:
    call = {**TOOL_CALL, "function": {"name": name, "arguments": json.dumps(arguments)}}
    if not stream:
        return json_response(openai_completion(None, tool_calls=[call], finish_reason="tool_calls"))
    chunks = openai_chunks([], finish_reason="tool_calls")
    delta = {"tool_calls": [{"index": 0, **call}]}
    chunks.insert(1, {**chunks[0], "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    return sse_response(chunks)


def reply_error(request: httpx.Request, kind: str) -> httpx.Response | None:
    status, code, headers = {
        "rate_limit": (429, "rate_limit_exceeded", {"retry-after": "7"}),
        "auth": (401, "invalid_api_key", {}),
        "quota": (429, "insufficient_quota", {}),
        "bad_request": (400, "invalid_value", {}),
        "context_length": (400, "context_length_exceeded", {}),
        "content_filter": (400, "content_filter", {}),
        "server": (500, None, {}),
    }[kind]
    body = {"error": {"message": f"{kind} error", "type": "invalid_request_error", "param": None, "code": code}}
    return json_response(body, status, headers)


def reply_stream_error(request: httpx.Request) -> httpx.Response:
    return sse_response([{"error": {"message": "Overloaded", "type": "server_error", "code": "overloaded"}}])
