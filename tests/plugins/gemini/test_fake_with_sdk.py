"""The fake is validated against the official ``google-genai`` SDK: the SDK, pointed at the fake
on 127.0.0.1, parses its replies and raises its own errors for the fake's errors; and the
plugin's requests carry what the SDK sends (path, query, ``x-goog-api-key``, camelCase body)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from llm_factory_core import ChatRequest
from llm_factory_gemini import GeminiProvider, GeminiSettings

from .fake_gemini import VALID_KEY, FakeGemini, GeminiError, Turn, camel_body

MODEL = "gemini-2.5-flash"


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def base_url(fake: FakeGemini) -> Iterator[str]:
    with fake.serve() as url:
        yield url


def client(base_url: str, key: str = VALID_KEY, api_version: str | None = "v1beta") -> genai.Client:
    """The plugin's default version is v1beta (this SDK release defaults to v1; both are served)."""
    options = types.HttpOptions(base_url=base_url, api_version=api_version)
    return genai.Client(api_key=key, http_options=options)


# -- the SDK parses the fake's replies ----------------------------------------------------------------


def test_sdk_parses_text_reply(fake: FakeGemini, base_url: str) -> None:
    fake.add(Turn(text="Hello there", usage=(83, 14, 104)))
    with client(base_url) as sdk:
        response = sdk.models.generate_content(model=MODEL, contents="Hi")
    assert response.text == "Hello there"
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (83, 14, 104)
    assert usage.total_token_count == 201
    assert response.model_version == MODEL
    request = fake.requests[-1]
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert request.headers["x-goog-api-key"] == VALID_KEY
    assert "key" not in request.query


def test_sdk_parses_stream(fake: FakeGemini, base_url: str) -> None:
    fake.add(Turn(text="Hello world", pieces=["Hel", "lo", " world"]))
    with client(base_url) as sdk:
        chunks = list(sdk.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == "Hello world"
    assert len(chunks) == 3
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[0].candidates and chunks[0].candidates[0].finish_reason is None
    assert fake.requests[-1].path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert fake.requests[-1].query == {"alt": "sse"}


def test_sdk_parses_function_call_with_signature(fake: FakeGemini, base_url: str) -> None:
    fake.add(Turn(calls=[("get_weather", {"city": "Tokyo"}), ("get_time", {"tz": "JST"})]))
    with client(base_url) as sdk:
        response = sdk.models.generate_content(model=MODEL, contents="Weather?")
    calls = response.function_calls
    assert calls is not None and [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Tokyo"}),
        ("get_time", {"tz": "JST"}),
    ]
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    parts = response.candidates[0].content.parts
    assert parts[0].thought_signature == base64.b64decode(fake.issued_signatures["get_weather"])
    assert parts[1].thought_signature is None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_sdk_parses_thoughts_and_blocked_prompt(fake: FakeGemini, base_url: str) -> None:
    fake.add(Turn(text="42", thoughts="Let me think"), Turn(block_reason="SAFETY"))
    with client(base_url) as sdk:
        response = sdk.models.generate_content(model=MODEL, contents="Q")
        blocked = sdk.models.generate_content(model=MODEL, contents="Q")
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    assert response.candidates[0].content.parts[0].thought is True
    assert response.text == "42"
    assert blocked.candidates is None
    assert blocked.prompt_feedback and blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY


# -- the SDK raises its own errors for the fake's errors ---------------------------------------------


@pytest.mark.parametrize(
    ("error", "sdk_error", "status"),
    [
        (GeminiError.rate_limit(), errors.ClientError, "RESOURCE_EXHAUSTED"),
        (GeminiError.context_too_long(), errors.ClientError, "INVALID_ARGUMENT"),
        (GeminiError.not_found(MODEL), errors.ClientError, "NOT_FOUND"),
        (GeminiError.unavailable(), errors.ServerError, "UNAVAILABLE"),
        (GeminiError.internal(), errors.ServerError, "INTERNAL"),
        (GeminiError.deadline(), errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
def test_sdk_raises_for_error_replies(
    fake: FakeGemini, base_url: str, error: GeminiError, sdk_error: type[errors.APIError], status: str
) -> None:
    fake.add(error)
    with client(base_url) as sdk, pytest.raises(sdk_error) as info:
        sdk.models.generate_content(model=MODEL, contents="Hi")
    assert info.value.code == error.code
    assert info.value.status == status
    assert info.value.message == error.message


def test_sdk_rate_limit_carries_retry_info(fake: FakeGemini, base_url: str) -> None:
    fake.add(GeminiError.rate_limit("12s"))
    with client(base_url) as sdk, pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model=MODEL, contents="Hi")
    details = info.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"} in details


def test_sdk_wrong_key_is_400_api_key_invalid(fake: FakeGemini, base_url: str) -> None:
    with client(base_url, key="AIzaSy-wrong-key-9999") as sdk, pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model=MODEL, contents="Hi")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_sdk_raises_for_error_inside_stream(fake: FakeGemini, base_url: str) -> None:
    fake.add(Turn(text="abc", pieces=["a", "b", "c"], stream_error=GeminiError.unavailable(), error_after=2))
    seen: list[str] = []
    with client(base_url) as sdk, pytest.raises(errors.ServerError) as info:
        for chunk in sdk.models.generate_content_stream(model=MODEL, contents="Hi"):
            seen.append(chunk.text or "")
    assert seen == ["a", "b"]
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")


def test_fake_rejects_unknown_names_and_bad_roles(fake: FakeGemini) -> None:
    """What makes the body comparison below meaningful: unknown names and roles are refused, as
    Google refuses them; proto (snake_case) names are accepted, as Google and the SDK do."""
    headers = {"x-goog-api-key": VALID_KEY}
    path = f"/v1beta/models/{MODEL}:generateContent"
    user = [{"role": "user", "parts": [{"text": "x"}]}]
    refused: list[dict[str, Any]] = [
        {"contents": user, "generationConfig": {"max_tokens": 5}},
        {"contents": user, "messages": []},
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        {"contents": [{"role": "user", "parts": [{"image_url": "x"}]}]},
    ]
    for body in refused:
        status, _, pieces = fake.handle("POST", path, {}, headers, json.dumps(body).encode())
        assert status == 400, body
        assert b"INVALID_ARGUMENT" in b"".join(pieces)
    accepted = {"contents": user, "generation_config": {"max_output_tokens": 5}}
    status, _, _ = fake.handle("POST", path, {}, headers, json.dumps(accepted).encode())
    assert status == 200


# -- the plugin sends what the SDK sends --------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PNG = base64.b64encode(b"\x89PNG fake image bytes").decode()


def sdk_request(fake: FakeGemini, base_url: str, signature: str, *, stream: bool) -> Any:
    contents = [
        types.Content(
            role="user",
            parts=[
                types.Part(text="What is in this picture, and the weather?"),
                types.Part(inline_data=types.Blob(mime_type="image/png", data=base64.b64decode(PNG))),
            ],
        ),
        types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(name="get_weather", args={"city": "Tokyo"}),
                    thought_signature=base64.b64decode(signature),
                )
            ],
        ),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"temp_c": 21}))],
        ),
    ]
    config = types.GenerateContentConfig(
        system_instruction=types.Content(parts=[types.Part(text="You are terse.")]),
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=256,
        stop_sequences=["END"],
        candidate_count=1,
        seed=7,
        response_mime_type="application/json",
        response_json_schema=SCHEMA,
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="get_weather", description="Weather of a city", parameters_json_schema=SCHEMA
                    )
                ]
            )
        ],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"]
            )
        ),
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT, threshold=types.HarmBlockThreshold.BLOCK_NONE
            )
        ],
    )
    with client(base_url) as sdk:
        if stream:
            list(sdk.models.generate_content_stream(model=MODEL, contents=contents, config=config))
        else:
            sdk.models.generate_content(model=MODEL, contents=contents, config=config)
    return fake.requests[-1]


def openai_request(signature: str, *, stream: bool) -> ChatRequest:
    return ChatRequest(
        stream=stream,
        messages=[
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture, and the weather?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_0123456789abcdef01234567~ts~{signature}",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": f"call_0123456789abcdef01234567~ts~{signature}",
                "content": '{"temp_c": 21}',
            },
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=256,
        stop="END",
        n=1,
        seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}},
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "description": "Weather of a city", "parameters": SCHEMA},
            }
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_plugin_request_matches_sdk_request(fake: FakeGemini, base_url: str, stream: bool) -> None:
    signature = base64.b64encode(b"opaque-signature-bytes").decode()
    expected = sdk_request(fake, base_url, signature, stream=stream)

    settings = GeminiSettings(
        model=MODEL,
        api_key=VALID_KEY,
        api_base=base_url,
        include_thoughts=True,
        thinking_budget=1024,
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    )
    async with httpx.AsyncClient() as http:
        provider = GeminiProvider(settings, client=http, name="gemini-test")
        request = openai_request(signature, stream=stream)
        if stream:
            [c async for c in provider.stream(request)]
        else:
            await provider.chat(request)
    got = fake.requests[-1]
    assert got.path == expected.path
    assert got.query == expected.query
    assert got.headers["x-goog-api-key"] == expected.headers["x-goog-api-key"] == VALID_KEY
    assert got.headers["content-type"] == expected.headers["content-type"] == "application/json"
    # The SDK leaves some nested names in proto form (inlineData.mime_type); Google reads both.
    assert got.body == camel_body(expected.body)
    assert got.body == camel_body(got.body), "the plugin sends JSON (camelCase) names only"


def test_plugin_path_with_the_sdk_default_version(fake: FakeGemini, base_url: str) -> None:
    """This SDK release defaults to v1; ``api_version: v1`` (or a base ending in /v1) matches it."""
    with client(base_url, api_version=None) as sdk:
        sdk.models.generate_content(model=MODEL, contents="Hi")
    sdk_path = fake.requests[-1].path
    from llm_factory_gemini._settings import endpoint

    for settings in (
        GeminiSettings(model=MODEL, api_key=VALID_KEY, api_base=base_url, api_version="v1"),
        GeminiSettings(model=MODEL, api_key=VALID_KEY, api_base=base_url + "/v1"),
    ):
        assert endpoint(settings, stream=False) == base_url + sdk_path


# -- today's models: the SDK meets the fake's rules ---------------------------------------------------


def test_sdk_gets_400_for_penalties_on_current_models(fake: FakeGemini, base_url: str) -> None:
    config = types.GenerateContentConfig(presence_penalty=0.5)
    with client(base_url) as sdk:
        for model in ("gemini-2.5-flash", "gemini-3-flash-preview"):
            with pytest.raises(errors.ClientError, match="Penalty is not enabled") as info:
                sdk.models.generate_content(model=model, contents="Hi", config=config)
            assert info.value.code == 400
        sdk.models.generate_content(model="gemini-2.0-flash", contents="Hi", config=config)  # still accepted


@pytest.mark.parametrize(
    ("model", "thinking", "error"),
    [
        ("gemini-3-flash-preview", {"thinking_level": "LOW", "thinking_budget": 1024}, "Only one of"),
        ("gemini-2.5-flash", {"thinking_level": "LOW"}, "Thinking level is not supported"),
        ("gemini-3.1-pro-preview", {"thinking_level": "MINIMAL"}, "Thinking level MINIMAL is not supported"),
        ("gemini-2.5-pro", {"thinking_budget": 0}, "Budget 0 is invalid"),
        ("gemini-2.5-flash-lite", {"thinking_budget": 100}, r"thinking budget \(100\) is invalid"),
        ("gemini-3-flash-preview", {"thinking_level": "MINIMAL"}, None),
        ("gemini-3.1-pro-preview", {"thinking_level": "MEDIUM"}, None),
        ("gemini-3-flash-preview", {"thinking_budget": 2048}, None),  # accepted for backward compatibility
        ("gemini-2.5-pro", {"thinking_budget": 128}, None),
    ],
)
def test_sdk_thinking_rules(
    fake: FakeGemini, base_url: str, model: str, thinking: dict[str, Any], error: str | None
) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**thinking))
    with client(base_url) as sdk:
        if error is None:
            assert sdk.models.generate_content(model=model, contents="Hi", config=config).text
        else:
            with pytest.raises(errors.ClientError, match=error):
                sdk.models.generate_content(model=model, contents="Hi", config=config)


def _tool_history(signature: bytes | None) -> list[types.Content]:
    call = types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "Tokyo"}))
    if signature is not None:
        call.thought_signature = signature
    return [
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        types.Content(role="model", parts=[call]),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"t": 21}))],
        ),
    ]


def test_sdk_gemini_3_requires_the_signature_or_the_skip_value(fake: FakeGemini, base_url: str) -> None:
    model = "gemini-3-flash-preview"
    fake.add(Turn(calls=[("get_weather", {"city": "Tokyo"})]))
    with client(base_url) as sdk:
        first = sdk.models.generate_content(model=model, contents="Weather?")
        assert first.candidates and first.candidates[0].content and first.candidates[0].content.parts
        issued = first.candidates[0].content.parts[0].thought_signature
        assert issued is not None
        with pytest.raises(errors.ClientError, match="missing a thought_signature"):
            sdk.models.generate_content(model=model, contents=_tool_history(None))
        with pytest.raises(errors.ClientError, match="Corrupted thought signature"):
            sdk.models.generate_content(model=model, contents=_tool_history(b"forged"))
        sdk.models.generate_content(model=model, contents=_tool_history(issued))
        # Google's skip value, as JSON gives it (the SDK decodes and re-encodes the bytes).
        skip = types.Part.model_validate_json('{"thoughtSignature": "skip_thought_signature_validator"}')
        sdk.models.generate_content(model=model, contents=_tool_history(skip.thought_signature))
        sdk.models.generate_content(model="gemini-2.5-flash", contents=_tool_history(None))  # 2.5 does not check


def test_sdk_parses_a_botched_tool_turn(fake: FakeGemini, base_url: str) -> None:
    fake.add(Turn(finish="MALFORMED_FUNCTION_CALL", finish_message="Malformed function call: f(("))
    with client(base_url) as sdk:
        response = sdk.models.generate_content(model=MODEL, contents="Hi")
    assert response.candidates is not None
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.MALFORMED_FUNCTION_CALL
    assert not (candidate.content and candidate.content.parts)  # no content at all


def test_sdk_vertex_path_and_bearer_token_are_served(fake: FakeGemini, base_url: str) -> None:
    from google.oauth2.credentials import Credentials

    fake.tokens = {"ya29.sdk-token"}
    options = types.HttpOptions(base_url=base_url, api_version="v1")
    credentials = Credentials(token="ya29.sdk-token")  # type: ignore[no-untyped-call]
    with genai.Client(
        vertexai=True, project="p-1", location="us-central1", credentials=credentials, http_options=options
    ) as sdk:
        sdk.models.generate_content(model="gemini-2.5-pro", contents="Hi")
    sdk_request = fake.requests[-1]
    assert sdk_request.headers["authorization"] == "Bearer ya29.sdk-token"
    settings = GeminiSettings(
        model="gemini-2.5-pro", vertex_project="p-1", vertex_location="us-central1", access_token="t", api_base=base_url
    )
    from llm_factory_gemini._settings import endpoint

    assert endpoint(settings, stream=False) == base_url + sdk_request.path


@pytest.mark.anyio
async def test_gemini_3_request_matches_sdk_request(fake: FakeGemini, base_url: str) -> None:
    """Thinking level, a signed call, and an image inside a function response (Gemini 3)."""
    model = "gemini-3-flash-preview"
    fake.add(Turn(calls=[("get_weather", {"city": "Tokyo"})]))
    with client(base_url) as sdk:
        first = sdk.models.generate_content(model=model, contents="Weather?")
        assert first.candidates and first.candidates[0].content and first.candidates[0].content.parts
        signature = first.candidates[0].content.parts[0].thought_signature
        contents = _tool_history(signature)
        contents[2].parts[0].function_response.parts = [  # type: ignore[index, union-attr]
            types.FunctionResponsePart(
                inline_data=types.FunctionResponseBlob(mime_type="image/png", data=base64.b64decode(PNG))
            )
        ]
        config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="LOW"))
        sdk.models.generate_content(model=model, contents=contents, config=config)
    expected = fake.requests[-1].body
    assert signature is not None
    request = ChatRequest(
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0123456789abcdef01234567",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
                        "extra_content": {"google": {"thought_signature": base64.b64encode(signature).decode()}},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_0123456789abcdef01234567",
                "content": [
                    {"type": "text", "text": '{"t": 21}'},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ],
        reasoning_effort="low",
    )
    settings = GeminiSettings(model=model, api_key=VALID_KEY, api_base=base_url)
    async with httpx.AsyncClient() as http:
        await GeminiProvider(settings, client=http, name="gemini-test").chat(request)
    assert fake.requests[-1].body == camel_body(expected)
