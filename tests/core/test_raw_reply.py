"""The non-streamed pass-through's shape check (``llm_factory_core._raw_reply``) and who may use it.

The plain reply is OpenAI's own, as its API writes it today (openai-python 3.x
``types/chat/chat_completion.py`` and ``chat_completion_message.py``: ``refusal`` and
``logprobs`` as nulls, ``annotations``, ``service_tier``, ``system_fingerprint``, usage details)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from llm_factory_core import ChatCompletion, ChatRequest, LLMFactory, ModelConfig
from llm_factory_core._raw_reply import RAW_REPLY, RawCompletion, plain_completion
from llm_factory_core.providers import OpenAICompatibleProvider
from llm_factory_core.testing import serve_handler

PLAIN: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_a1b2c3",
}


def _raw(data: Any) -> RawCompletion | None:
    return plain_completion(data, json.dumps(data).encode())


def test_a_plain_reply_passes_with_its_bytes_usage_and_text() -> None:
    body = json.dumps(PLAIN).encode()
    raw = plain_completion(json.loads(body), body)
    assert raw is not None and raw.body is body
    assert raw.usage == (19, 10) and raw.texts == ["Hello!"]
    usage = raw.usage_object()
    assert usage is not None and usage.prompt_tokens_details == {"cached_tokens": 8, "audio_tokens": 0}


def _variant(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(PLAIN)
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return data


_DELETE = object()
_CALL = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", ""),  # the parsed path makes one up
        ("id", _DELETE),
        ("created", 0),
        ("model", ""),  # the parsed path puts the deployment's model
        ("object", "chat.completion.chunk"),
        ("prompt_filter_results", []),  # Azure's: an unknown top-level field
        ("choices", []),
        ("choices.0.finish_reason", "end_turn"),  # mapped by the provider
        ("choices.0.finish_reason", None),
        ("choices.0.finish_reason", "tool_calls"),
        ("choices.0.message.tool_calls", _CALL),
        ("choices.0.message.role", "user"),
        ("choices.0.message.content", ["Hello"]),
        ("choices.0.message.audio", {"id": "a"}),
        ("choices.0.logprobs", {"content": []}),
        ("choices.0.content_filter_results", {}),
        ("choices.0.index", "0"),
        ("usage.prompt_tokens", 1.5),
        ("usage", [1, 2]),
    ],
)
def test_anything_but_the_plain_shape_takes_the_parsed_path(path: str, value: Any) -> None:
    assert _raw(_variant(path, value)) is None
    assert _raw([PLAIN]) is None


def test_a_reply_without_usage_or_content_passes() -> None:
    data = _variant("usage", _DELETE)
    data["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "I can't."}
    raw = _raw(data)
    assert raw is not None and raw.usage is None and raw.usage_object() is None and raw.texts == [""]


class _Fixes(OpenAICompatibleProvider):
    key = "fixes"
    raw_sse = True
    raw_reply = True


class _FixesMore(_Fixes):
    key = "fixes-more"

    def adapt_completion(self, data: dict[str, Any]) -> dict[str, Any]:
        return data


class _MapsReasons(_Fixes):
    key = "maps-reasons"

    def map_finish_reason(self, reason: Any) -> Any:
        return reason


class _SaysSo(_FixesMore):
    key = "says-so"
    raw_reply = True


def test_a_subclass_that_fixes_up_replies_loses_the_capability_unless_it_says_so() -> None:
    assert _Fixes.raw_reply and not _FixesMore.raw_reply and not _MapsReasons.raw_reply
    assert _SaysSo.raw_reply
    assert not OpenAICompatibleProvider.raw_reply


@pytest.mark.anyio
async def test_only_a_caller_that_asks_gets_the_raw_reply(http_transport: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(PLAIN).encode(), headers={"content-type": "application/json"})

    with serve_handler(handler) as base:
        config = ModelConfig(provider="openai", model_name="gpt", api_key="sk-up-0001", api_base=f"{base}/v1")
        factory = LLMFactory([config], transport=http_transport, num_retries=0)
        try:
            reply = await factory.chat_async("hi", model="gpt")  # the library: always parsed
            assert isinstance(reply, ChatCompletion) and reply.choices[0].message.content == "Hello!"
            request = ChatRequest(model="gpt", messages=[{"role": "user", "content": "hi"}])
            token = RAW_REPLY.set(True)
            try:
                raw = await factory.router.chat(request, factory.providers())
            finally:
                RAW_REPLY.reset(token)
            assert isinstance(raw, RawCompletion) and json.loads(raw.body) == PLAIN
            assert raw.deployment == reply.deployment and raw.deployment is not None
        finally:
            await factory.aclose()
