"""Pure translation: OpenAI request -> Gemini body, Gemini reply -> OpenAI shapes, error body ->
typed error, URLs, the stream payload parser and the thought-signature carrier."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import llm_factory_gemini
from llm_factory_core import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ContextLengthError,
    InsufficientQuotaError,
    RateLimitError,
    ServerError,
)
from llm_factory_core._bounded import LimitExceeded
from llm_factory_core.providers import reasoning_memory
from llm_factory_gemini import GeminiSettings
from llm_factory_gemini._decode import Blocked, StreamState, decode_response, finish_reason
from llm_factory_gemini._encode import EncodeError, encode_request
from llm_factory_gemini._errors import classify_error, parse_duration
from llm_factory_gemini._settings import auth_headers, endpoint, validate
from llm_factory_gemini._signatures import MEMORY_KIND, signature_of, unpack_call_id
from llm_factory_gemini._stream import PayloadDecoder

from .fake_gemini import GeminiError

S = GeminiSettings(model="gemini-2.5-flash", api_key="AIzaSy-test-key-0001")


def encode(settings: GeminiSettings = S, **kw: Any) -> dict[str, Any]:
    return encode_request(ChatRequest(**kw), settings)


def test_public_api() -> None:
    assert llm_factory_gemini.__all__ == ["GeminiProvider", "GeminiSettings"]
    assert llm_factory_gemini.GeminiProvider.key == "gemini"


# -- request ---------------------------------------------------------------------------------------


def test_roles_system_and_merging() -> None:
    body = encode(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": "Still there?"},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "Good."},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Use metric units."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "Still there?"}]},
        {"role": "model", "parts": [{"text": "Yes."}]},
        {"role": "user", "parts": [{"text": "Good."}]},
    ]
    assert "generationConfig" not in body


def pack_call_id(call_id: str, signature: str) -> str:
    """How releases before 0.2 packed a signature into the id (such ids still come back)."""
    return f"{call_id}~ts~{signature}"


def test_generation_settings() -> None:
    # Penalties on a model that still takes them (2.5 and 3.x reject them: the provider's model
    # rules drop them before encoding, see test_rules_*).
    body = encode(
        S.model_copy(update={"model": "gemini-2.0-flash"}),
        messages=[{"role": "user", "content": "x"}],
        temperature=0.5,
        top_p=0.8,
        max_completion_tokens=99,
        max_tokens=10,
        stop="END",
        n=2,
        seed=3,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_format={"type": "json_object"},
        reasoning_effort="low",
    )
    assert body["generationConfig"] == {
        "temperature": 0.5,
        "topP": 0.8,
        "maxOutputTokens": 99,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 3,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 1024},
    }


def test_json_schema_and_thinking_settings() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    settings = S.model_copy(update={"thinking_budget": 0, "include_thoughts": False})
    body = encode(
        settings,
        messages=[{"role": "user", "content": "x"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        reasoning_effort="high",  # the request wins over the configured budget: one field only
    )
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "thinkingConfig": {"includeThoughts": False, "thinkingBudget": 24576},
    }
    level = GeminiSettings(model="gemini-3-flash-preview", api_key="k" * 20, thinking_level="low")
    assert encode(level, messages=[{"role": "user", "content": "x"}])["generationConfig"] == {
        "thinkingConfig": {"thinkingLevel": "LOW"}
    }
    assert encode(level, messages=[{"role": "user", "content": "x"}], reasoning_effort="xhigh")["generationConfig"] == {
        "thinkingConfig": {"thinkingLevel": "HIGH"}
    }
    assert encode(messages=[{"role": "user", "content": "x"}], response_format={"type": "text"}) == {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}]
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tools_and_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    params = {"type": "object", "properties": {"q": {"type": "string", "minLength": 1}}}
    body = encode(
        messages=[{"role": "user", "content": "x"}],
        tools=[
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": params}},
            {"type": "function", "function": {"name": "g"}},
            {"googleSearch": {}},
        ],
        tool_choice=choice,
    )
    assert body["tools"] == [
        {"functionDeclarations": [{"name": "f", "description": "d", "parametersJsonSchema": params}, {"name": "g"}]},
        {"googleSearch": {}},
    ]
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_tool_history_both_ways() -> None:
    sig = "c2lnbmF0dXJl"
    body = encode(
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": pack_call_id("call_" + "a" * 24, sig), "type": "function",
                     "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                    {"id": "native-id-7", "type": "function",
                     "function": {"name": "weather_eu", "arguments": '{"city": "Rome"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": pack_call_id("call_" + "a" * 24, sig), "content": "[1, 2]"},
            {"role": "tool", "tool_call_id": "native-id-7", "content": [{"type": "text", "text": "warm"}]},
            {"role": "user", "content": "Thanks"},
        ]
    )  # fmt: skip
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": sig},
            {"functionCall": {"name": "weather_eu", "args": {"city": "Rome"}, "id": "native-id-7"}},
        ],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "weather", "response": {"result": [1, 2]}}},
            {"functionResponse": {"name": "weather_eu", "response": {"result": "warm"}, "id": "native-id-7"}},
            {"text": "Thanks"},
        ],
    }


def test_images_and_audio() -> None:
    body = encode(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AAA="}},
                    {"type": "image_url", "image_url": {"url": "https://files.example.test/cat.png"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                ],
            }
        ]
    )
    assert body["contents"][0]["parts"] == [
        {"text": "Describe"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/AAA="}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://files.example.test/cat.png"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "unknown tool_call_id"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:x"}}]}]}, "base64"),
        ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}, "response_format"),
        ({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]}, "not valid JSON"),
    ],
)  # fmt: skip
def test_requests_gemini_cannot_express(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        encode(**kw)


def test_extra_body_merges_and_safety_settings() -> None:
    settings = S.model_copy(update={"safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]})
    body = encode(
        settings,
        messages=[{"role": "user", "content": "x"}],
        temperature=0.1,
        extra_body={"generationConfig": {"topK": 5}, "cachedContent": "cachedContents/abc"},
    )
    assert body["generationConfig"] == {"temperature": 0.1, "topK": 5}
    assert body["cachedContent"] == "cachedContents/abc"
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]


def test_signature_carriers() -> None:
    assert unpack_call_id(pack_call_id("call_x", "ab+/=")) == ("call_x", "ab+/=")
    assert unpack_call_id("call_x") == ("call_x", None)
    extra = {"id": pack_call_id("c", "from-id"), "extra_content": {"google": {"thought_signature": "from-extra"}}}
    assert signature_of(extra) == "from-extra"
    assert signature_of({"id": pack_call_id("c", "from-id")}) == "from-id"
    assert signature_of({"id": "call_unknown"}) is None
    reasoning_memory.remember(MEMORY_KIND, "call_known", "from-memory")
    assert signature_of({"id": "call_known"}) == "from-memory"
    assert signature_of({"id": "call_known", "extra_content": {"google": {"thought_signature": "x"}}}) == "x"
    assert reasoning_memory.recall("claude.thinking", "call_known") is None  # kinds never mix


# -- response --------------------------------------------------------------------------------------


def test_finish_reason_map() -> None:
    assert finish_reason("STOP", False) == "stop"
    assert finish_reason("STOP", True) == "tool_calls"
    assert finish_reason("MAX_TOKENS", True) == "length"
    for reason in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"):
        assert finish_reason(reason, False) == "content_filter"
    assert finish_reason(None, False) is None
    assert finish_reason("FINISH_REASON_UNSPECIFIED", False) is None
    assert finish_reason("OTHER", False) == "stop"
    assert finish_reason("MODEL_ARMOR", False) == "content_filter"


def test_decode_response_with_calls_and_cache_usage() -> None:
    data = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "plan", "thought": True},
                        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "U0lH"},
                        {"functionCall": {"id": "g-1", "name": "g", "args": {}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "cachedContentTokenCount": 4,
                          "totalTokenCount": 15},
        "responseId": "abc",
    }  # fmt: skip
    result = decode_response(data, "gemini-x")
    assert result.id == "chatcmpl-abc" and result.model == "gemini-x"
    message = result.choices[0].message
    assert message.content is None
    assert message["reasoning_content"] == "plan"
    calls = message.tool_calls
    assert calls is not None
    assert calls[0].id.startswith("call_") and len(calls[0].id) <= 40 and "~ts~" not in calls[0].id
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "U0lH"}}
    assert reasoning_memory.recall(MEMORY_KIND, calls[0].id) == "U0lH"
    assert calls[1].get("extra_content") is None
    assert calls[1].id == "g-1" and json.loads(calls[1].function.arguments) == {}
    assert result.choices[0].finish_reason == "tool_calls"
    assert result.usage is not None
    assert result.usage.prompt_tokens_details == {"cached_tokens": 4}
    assert result.usage.completion_tokens_details == {"reasoning_tokens": 0}


def test_blocked_prompt_and_safety_candidate() -> None:
    with pytest.raises(Blocked, match="SAFETY"):
        decode_response({"promptFeedback": {"blockReason": "SAFETY"}}, "m")
    filtered = decode_response({"candidates": [{"finishReason": "SAFETY", "index": 0}]}, "m")
    assert filtered.choices[0].finish_reason == "content_filter"
    assert filtered.choices[0].message.content is None


def test_stream_state_numbers_tool_calls_and_finishes() -> None:
    state = StreamState("m")
    first = state.chunk({"candidates": [{"content": {"parts": [{"functionCall": {"name": "a", "args": {}}}]}}]})
    second = state.chunk(
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "b", "args": {"x": 1}}}]},
                         "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2}}
    )  # fmt: skip
    assert first is not None and second is not None
    assert first.choices[0].delta.role == "assistant" and second.choices[0].delta.role is None
    assert [c.index for c in (first.choices[0].delta.tool_calls or [])] == [0]
    assert [c.index for c in (second.choices[0].delta.tool_calls or [])] == [1]
    assert second.choices[0].finish_reason == "tool_calls" and state.finished
    assert first.id == second.id
    usage = state.usage_chunk()
    assert usage is not None and usage.usage is not None and usage.usage.total_tokens == 3
    assert state.chunk({"usageMetadata": {"promptTokenCount": 1}}) is None


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls", "code"),
    [
        (GeminiError.rate_limit("7s"), RateLimitError, "RESOURCE_EXHAUSTED"),
        (GeminiError.invalid_key(), AuthenticationError, "API_KEY_INVALID"),
        (GeminiError.permission_denied(), AuthenticationError, "PERMISSION_DENIED"),
        (GeminiError(400, "FAILED_PRECONDITION", "User location is not supported"), InsufficientQuotaError, None),
        (GeminiError(402, "RESOURCE_EXHAUSTED", "Prepaid credits exhausted"), InsufficientQuotaError, None),
        (GeminiError.invalid_argument(), BadRequestError, "INVALID_ARGUMENT"),
        (GeminiError.context_too_long(), ContextLengthError, "INVALID_ARGUMENT"),
        (GeminiError.not_found("m"), BadRequestError, "NOT_FOUND"),
        (GeminiError.unavailable(), ServerError, "UNAVAILABLE"),
        (GeminiError.internal(), ServerError, "INTERNAL"),
        (GeminiError.deadline(), ServerError, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_classification(error: GeminiError, cls: type, code: str | None) -> None:
    got, message, kw = classify_error(error.code, httpx.Headers(), json.dumps(error.body()).encode())
    assert got is cls
    assert message == error.message
    assert kw["status"] == error.code
    if code:
        assert kw["code"] == code
    assert kw["retry_after"] == (7.0 if cls is RateLimitError else None)


def test_error_variants() -> None:
    wrapped = json.dumps([GeminiError.rate_limit("3s").body()]).encode()  # the OpenAI-compatible endpoint's form
    assert classify_error(429, httpx.Headers(), wrapped)[2]["retry_after"] == 3.0
    header_only = classify_error(429, httpx.Headers({"retry-after": "9"}), b"{}")
    assert header_only[0] is RateLimitError and header_only[2]["retry_after"] == 9.0
    in_stream = classify_error(None, httpx.Headers(), GeminiError.unavailable().body())
    assert in_stream[0] is ServerError and in_stream[2]["status"] == 503
    not_json = classify_error(502, httpx.Headers(), b"<html>Bad gateway</html>")
    assert not_json[0] is ServerError and "Bad gateway" in not_json[1]
    assert parse_duration("2.500s") == 2.5 and parse_duration("soon") is None


# -- settings and URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "version", "url"),
    [
        (None, "v1beta", "https://generativelanguage.googleapis.com/v1beta/models/m:generateContent"),
        ("https://proxy.test/", "v1beta", "https://proxy.test/v1beta/models/m:generateContent"),
        ("https://proxy.test/v1beta", "v1beta", "https://proxy.test/v1beta/models/m:generateContent"),
        ("https://proxy.test/gemini/v1", "v1beta", "https://proxy.test/gemini/v1/models/m:generateContent"),
        ("https://proxy.test/v1alpha", "v1beta", "https://proxy.test/v1alpha/models/m:generateContent"),
        (None, "v1", "https://generativelanguage.googleapis.com/v1/models/m:generateContent"),
    ],
)
def test_endpoint(base: str | None, version: str, url: str) -> None:
    settings = GeminiSettings(model="models/m", api_key="k" * 20, api_base=base, api_version=version)
    assert endpoint(settings, stream=False) == url
    assert endpoint(settings, stream=True) == url.replace(":generateContent", ":streamGenerateContent?alt=sse")


def test_vertex_endpoint_and_auth() -> None:
    token = GeminiSettings(model="gemini-2.5-pro", vertex_project="p-1", vertex_location="europe-west4",
                           access_token="ya29.token-value", user_project="billing-p")  # fmt: skip
    assert endpoint(token, stream=True) == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p-1/locations/europe-west4"
        "/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert auth_headers(token) == {"authorization": "Bearer ya29.token-value", "x-goog-user-project": "billing-p"}
    glob = GeminiSettings(model="m", vertex_project="p", api_key="AIzaSy-vertex-express")
    assert endpoint(glob, stream=False).startswith("https://aiplatform.googleapis.com/v1/projects/p/locations/global/")
    assert auth_headers(glob) == {"x-goog-api-key": "AIzaSy-vertex-express"}


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="api_key"):
        validate(GeminiSettings(model="m"))
    with pytest.raises(ValueError, match="vertex_project"):
        validate(GeminiSettings(model="m", access_token="t"))
    with pytest.raises(ValueError, match="vertex_project"):
        validate(GeminiSettings(model="m", use_adc=True))
    with pytest.raises(ValueError, match="not a file"):
        validate(GeminiSettings(model="m", vertex_project="p", credentials_file="/nonexistent/sa.json"))
    validate(GeminiSettings(model="m", vertex_project="p", credentials_file=__file__))
    assert GeminiSettings(model="m").missing_thought_signature == "skip_thought_signature_validator"
    assert GeminiSettings(model="m").thought_signature_in_id is False
    assert "ya29" not in repr(GeminiSettings(model="m", vertex_project="p", access_token="ya29.secret"))


# -- stream payloads -------------------------------------------------------------------------------


def payloads(raw: bytes, size: int, max_event: int = 1 << 20) -> list[str]:
    """``raw`` fed to a ``PayloadDecoder`` in reads of ``size`` bytes."""
    decoder = PayloadDecoder(max_event)
    out = [p for at in range(0, len(raw), size) for p in decoder.feed(raw[at : at + size])]
    return [p.decode() if isinstance(p, bytes) else p for p in out + decoder.end()]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 20])
def test_stream_payloads_with_crlf_comments_and_raw_error(size: int) -> None:
    error = json.dumps(GeminiError.internal().body(), indent=2)
    raw = (f': keep-alive\r\n\r\ndata: {{"a": 1}}\r\n\r\ndata: {{"b":\r\ndata: 2}}\r\n\r\n{error}\n').encode()
    found = [json.loads(p) for p in payloads(raw, size)]
    assert found == [{"a": 1}, {"b": 2}, GeminiError.internal().body()]


@pytest.mark.parametrize("size", [1, 5, 1 << 20])
def test_stream_payloads_last_event_without_blank_line(size: int) -> None:
    assert payloads(b'data: {"a": 1}', size) == ['{"a": 1}']


@pytest.mark.parametrize("size", [1, 4, 1 << 20])
def test_stream_payloads_with_lone_cr_and_lf_line_ends(size: int) -> None:
    raw = b'data: {"a": 1}\r\rdata: {"b": 2}\n\ndata: {"c": 3}\r\n\r\n'
    assert payloads(raw, size) == ['{"a": 1}', '{"b": 2}', '{"c": 3}']


def test_a_partial_event_beyond_the_cap_is_refused() -> None:
    decoder = PayloadDecoder(100)
    decoder.feed(b'data: {"a": "' + b"x" * 60 + b"\n")
    with pytest.raises(LimitExceeded, match="max_event_bytes=100"):
        decoder.feed(b'data: "' + b"y" * 60 + b"\n")
