"""The fake is validated, not assumed: the official ``openai`` SDK (``OpenAI`` and ``AzureOpenAI``)
pointed at it parses its replies and raises its own error types for its error replies, and the
plugin's requests carry what the SDK sends for the same call (path, query, auth header, body keys)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from llm_factory_core import LLMFactory, ModelConfig

from .fake_embeddings import vector_for
from .fake_openai import TOOL_CALLS, FakeOpenAI, RecordedRequest

AZURE = "https://res-east.openai.azure.com"
AZURE_KEY = "azure-key-0000000000000001"
OPENAI_KEY = "sk-proj-fake-000000000000001"
MESSAGES = [{"role": "user", "content": "Hello!"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def http_client(fake: FakeOpenAI) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake))


def azure_sdk(fake: FakeOpenAI, **kwargs: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=AZURE,
        api_key=AZURE_KEY,
        api_version="2024-10-21",
        http_client=http_client(fake),
        max_retries=0,
        **kwargs,
    )


def openai_sdk(fake: FakeOpenAI, base_url: str = "https://api.openai.com/v1", key: str = OPENAI_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=base_url, http_client=http_client(fake), max_retries=0)


# -- the SDK parses the fake's replies ------------------------------------------------------------


def test_sdk_parses_azure_completion_with_filter_annotations() -> None:
    fake = FakeOpenAI(text="Ahoy matey!")
    reply = azure_sdk(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content == "Ahoy matey!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens == 21
    assert reply.model_extra and reply.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    seen = fake.requests[0]
    assert (seen.route, seen.deployment, seen.auth_header, seen.query) == (
        "azure",
        "gpt-4o",
        "api-key",
        {"api-version": "2024-10-21"},
    )


def test_sdk_parses_openai_tool_calls() -> None:
    fake = FakeOpenAI()
    fake.push("tools")
    reply = openai_sdk(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)  # type: ignore[arg-type]
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == [  # type: ignore[union-attr]
        (c["id"], c["name"], json.loads(c["arguments"])) for c in TOOL_CALLS
    ]
    assert fake.requests[0].route == "openai" and fake.requests[0].auth_header == "authorization"


def test_sdk_parses_azure_stream_with_prompt_filter_async_filter_and_usage() -> None:
    fake = FakeOpenAI(text="Once upon a time, a fox.", async_filter=True)
    chunks = list(
        azure_sdk(fake).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    # The first chunk is Azure's prompt-filter chunk: empty identity, no choices.
    assert (chunks[0].id, chunks[0].created, chunks[0].object, chunks[0].choices) == ("", 0, "", [])
    annotations = [c for c in chunks[1:] if c.id == ""]
    assert annotations and all(ch.delta is None for c in annotations for ch in c.choices)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices if ch.delta is not None)
    assert text == "Once upon a time, a fox."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 21
    assert any(ch.finish_reason == "stop" for c in chunks for ch in c.choices)


def test_sdk_parses_openai_tool_call_stream() -> None:
    fake = FakeOpenAI()
    fake.push("tools")
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in openai_sdk(fake).chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    ):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [calls[i] for i in sorted(calls)] == TOOL_CALLS


def test_sdk_parses_azure_v1_reply() -> None:
    fake = FakeOpenAI(text="v1 answer")
    sdk = openai_sdk(fake, base_url=f"{AZURE}/openai/v1/", key=AZURE_KEY)
    reply = sdk.chat.completions.create(model="my-gpt4o-deployment", messages=MESSAGES)
    assert reply.choices[0].message.content == "v1 answer"
    seen = fake.requests[0]
    assert (seen.route, seen.auth_header, seen.body["model"]) == (
        "azure-v1",
        "authorization",
        "my-gpt4o-deployment",
    )


# -- the SDK raises its own error types for the fake's errors --------------------------------------


@pytest.mark.parametrize("flavour", ["azure", "openai"])
@pytest.mark.parametrize(
    ("kind", "sdk_error", "code"),
    [
        ("rate_limit", openai.RateLimitError, None),
        ("auth", openai.AuthenticationError, None),
        ("content_filter", openai.BadRequestError, "content_filter"),
        ("context_length", openai.BadRequestError, "context_length_exceeded"),
        ("server_error", openai.InternalServerError, None),
    ],
)
def test_sdk_raises_its_error_types(flavour: str, kind: str, sdk_error: type[Exception], code: str | None) -> None:
    fake = FakeOpenAI()
    fake.push(kind, retry_after="7", retry_after_ms="7250")
    sdk = azure_sdk(fake) if flavour == "azure" else openai_sdk(fake)
    with pytest.raises(sdk_error) as info:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    error = info.value
    assert isinstance(error, openai.APIStatusError)
    if code is not None:
        assert error.code == code
    if kind == "rate_limit":
        assert error.response.headers["retry-after"] == "7"
        assert error.response.headers["retry-after-ms"] == "7250"
        assert error.code == ("429" if flavour == "azure" else "rate_limit_exceeded")
    if kind == "content_filter":
        body = error.body
        assert isinstance(body, dict) and body["innererror"]["code"] == "ResponsibleAIPolicyViolation"


def test_sdk_rate_limit_with_only_a_message_hint() -> None:
    fake = FakeOpenAI()
    fake.push("rate_limit", retry_after="24", hint_only=True)
    with pytest.raises(openai.RateLimitError, match="retry after 24 seconds") as info:
        azure_sdk(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "retry-after" not in info.value.response.headers
    assert info.value.code == "429"


def test_sdk_authentication_error_for_an_invalid_key() -> None:
    fake = FakeOpenAI(invalid_keys={AZURE_KEY})
    with pytest.raises(openai.AuthenticationError):
        azure_sdk(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_missing_api_version_is_a_bad_request() -> None:
    fake = FakeOpenAI()
    sdk = openai_sdk(fake, base_url=f"{AZURE}/openai/deployments/gpt-4o", key=AZURE_KEY)
    with pytest.raises(openai.BadRequestError, match="api-version"):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_sdk_raises_for_an_error_event_inside_a_200_stream() -> None:
    fake = FakeOpenAI()
    fake.push("stream_error")
    stream = openai_sdk(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        list(stream)


def test_sdk_parses_a_stream_blocked_by_the_async_filter() -> None:
    fake = FakeOpenAI()
    fake.push("stream_filtered")
    chunks = list(azure_sdk(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert chunks[-1].choices[0].delta is None


# -- the plugin sends what the SDK sends -----------------------------------------------------------


def _shape(r: RecordedRequest) -> dict[str, Any]:
    return {
        "method": r.method,
        "host": r.host,
        "path": r.path,
        "query": r.query,
        "auth_header": r.auth_header,
        "key": r.key,
        "body_keys": sorted(r.body),
        "model": r.body.get("model"),
        "messages": r.body["messages"],
        "stream": r.body.get("stream", False),
    }


CALLS: dict[str, dict[str, Any]] = {
    "plain": {},
    "params": {
        "temperature": 0.3,
        "max_tokens": 200,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "user": "u-1",
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    },
    "stream": {"stream": True, "stream_options": {"include_usage": True}},
}

FLAVOURS: dict[str, tuple[dict[str, Any], Callable[[FakeOpenAI], openai.OpenAI], str]] = {
    # name: (ModelConfig extras, SDK client factory, model argument the SDK gets)
    "openai": (
        {"api_key": OPENAI_KEY},
        lambda fake: openai_sdk(fake),
        "gpt-4o",
    ),
    "azure-classic": (
        {"api_key": AZURE_KEY, "api_base": AZURE, "api_version": "2024-10-21"},
        lambda fake: azure_sdk(fake),
        "gpt-4o",
    ),
    "azure-deployment": (
        {"api_key": AZURE_KEY, "api_base": AZURE, "api_version": "2024-10-21", "deployment": "prod-4o"},
        lambda fake: azure_sdk(fake, azure_deployment="prod-4o"),
        "gpt-4o",
    ),
    "azure-v1": (
        {"api_key": AZURE_KEY, "api_base": f"{AZURE}/openai/v1", "deployment": "prod-4o"},
        lambda fake: openai_sdk(fake, base_url=f"{AZURE}/openai/v1/", key=AZURE_KEY),
        "prod-4o",
    ),
    "compatible": (
        {"api_key": "vllm-token-0000001", "api_base": "http://127.0.0.1:8000/v1"},
        lambda fake: openai_sdk(fake, base_url="http://127.0.0.1:8000/v1", key="vllm-token-0000001"),
        "gpt-4o",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("flavour", list(FLAVOURS))
async def test_plugin_request_matches_the_sdk(flavour: str, call: str) -> None:
    extras, make_sdk, sdk_model = FLAVOURS[flavour]
    params = dict(CALLS[call])
    stream = params.pop("stream", False)

    sdk_params = dict(params)
    if flavour != "compatible" and "max_tokens" in sdk_params:
        # api.openai.com and Azure get the non-deprecated field every current model accepts (reasoning
        # models refuse max_tokens); a caller's max_tokens must arrive as what the SDK sends for it.
        sdk_params["max_completion_tokens"] = sdk_params.pop("max_tokens")
    sdk_fake = FakeOpenAI()
    sdk = make_sdk(sdk_fake)
    if stream:
        list(sdk.chat.completions.create(model=sdk_model, messages=MESSAGES, stream=True, **sdk_params))  # type: ignore[call-overload]
    else:
        sdk.chat.completions.create(model=sdk_model, messages=MESSAGES, **sdk_params)  # type: ignore[call-overload]

    ours_fake = FakeOpenAI()
    config = ModelConfig(provider="openai", model_name="gpt-4o", **extras)
    async with LLMFactory(config, transport=ours_fake.transport) as factory:
        if stream:
            async for _ in factory.stream_async(MESSAGES, **params):
                pass
        else:
            await factory.chat_async(MESSAGES, **params)

    (theirs,) = sdk_fake.requests
    (ours,) = ours_fake.requests
    assert _shape(ours) == _shape(theirs)
    assert ours.headers["content-type"].startswith("application/json")
    for name, value in sdk_params.items():
        assert ours.body[name] == theirs.body[name] == value


@pytest.mark.anyio
async def test_plugin_and_sdk_both_send_entra_tokens_as_bearer() -> None:
    sdk_fake, ours_fake = FakeOpenAI(), FakeOpenAI()
    openai.AzureOpenAI(
        azure_endpoint=AZURE,
        azure_ad_token="entra-token-000001",
        api_version="2024-10-21",
        http_client=http_client(sdk_fake),
        max_retries=0,
    ).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    config = ModelConfig(
        provider="openai",
        model_name="gpt-4o",
        api_base=AZURE,
        api_version="2024-10-21",
        azure_ad_token="entra-token-000001",
    )
    async with LLMFactory(config, transport=ours_fake.transport) as factory:
        await factory.chat_async(MESSAGES)
    assert _shape(ours_fake.requests[0]) == _shape(sdk_fake.requests[0])
    assert ours_fake.requests[0].headers["authorization"] == "Bearer entra-token-000001"
    assert "api-key" not in ours_fake.requests[0].headers


@pytest.mark.anyio
async def test_plugin_and_sdk_send_the_same_organization_and_project_headers() -> None:
    sdk_fake, ours_fake = FakeOpenAI(), FakeOpenAI()
    openai.OpenAI(
        api_key=OPENAI_KEY,
        organization="org-fake01",
        project="proj_fake01",
        http_client=http_client(sdk_fake),
        max_retries=0,
    ).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    config = ModelConfig(
        provider="openai", model_name="gpt-4o", api_key=OPENAI_KEY, organization="org-fake01", project="proj_fake01"
    )
    async with LLMFactory(config, transport=ours_fake.transport) as factory:
        await factory.chat_async(MESSAGES)
    theirs, ours = sdk_fake.requests[0].headers, ours_fake.requests[0].headers
    for name in ("openai-organization", "openai-project"):
        assert ours[name] == theirs[name]


# -- today's models: what the fake refuses, as the SDK sees it --------------------------------------

LONG_ID = "call_weather~ts~" + "s" * 1500


@pytest.mark.parametrize(
    ("model", "params", "param", "code", "message"),
    [
        (
            "gpt-5",
            {"max_tokens": 100},
            "max_tokens",
            "unsupported_parameter",
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
        ),
        ("o3-mini", {"max_tokens": 100}, "max_tokens", "unsupported_parameter", "Use 'max_completion_tokens'"),
        (
            "gpt-5-mini",
            {"temperature": 0.7},
            "temperature",
            "unsupported_value",
            "Unsupported value: 'temperature' does not support 0.7 with this model. "
            "Only the default (1) value is supported.",
        ),
        ("o4-mini", {"top_p": 0.5}, "top_p", "unsupported_value", "'top_p' does not support 0.5"),
        ("gpt-5.1", {"temperature": 0.2}, "temperature", "unsupported_value", "does not support 0.2"),
        ("gpt-5", {"presence_penalty": 0.5}, "presence_penalty", "unsupported_parameter", "'presence_penalty'"),
        ("o1", {"logprobs": True}, "logprobs", "unsupported_parameter", "'logprobs' is not supported"),
    ],
)
def test_sdk_sees_what_reasoning_models_refuse(
    model: str, params: dict[str, Any], param: str, code: str, message: str
) -> None:
    for sdk in (openai_sdk(FakeOpenAI()), azure_sdk(FakeOpenAI())):
        with pytest.raises(openai.BadRequestError, match=re.escape(message)) as info:
            sdk.chat.completions.create(model=model, messages=MESSAGES, **params)  # type: ignore[call-overload]
        assert (info.value.param, info.value.code, info.value.type) == (param, code, "invalid_request_error")


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("gpt-5", {"max_completion_tokens": 100, "temperature": 1, "reasoning_effort": "minimal"}),
        ("gpt-5.1", {"temperature": 0.2, "top_p": 0.9, "logprobs": True, "reasoning_effort": "none"}),
        ("gpt-5-chat-latest", {"temperature": 0.2, "max_completion_tokens": 100}),
        ("gpt-4o", {"max_tokens": 100, "temperature": 0.2, "presence_penalty": 0.5}),
        ("gpt-4.1", {"max_completion_tokens": 100, "logprobs": True}),
    ],
)
def test_sdk_calls_todays_models_accept(model: str, params: dict[str, Any]) -> None:
    reply = openai_sdk(FakeOpenAI(text="fine")).chat.completions.create(model=model, messages=MESSAGES, **params)  # type: ignore[call-overload]
    assert reply.choices[0].message.content == "fine"


def test_an_azure_deployment_follows_the_model_it_serves() -> None:
    fake = FakeOpenAI(deployment_models={"prod-reasoner": "gpt-5"})
    sdk = azure_sdk(fake, azure_deployment="prod-reasoner")
    with pytest.raises(openai.BadRequestError, match="max_completion_tokens"):
        sdk.chat.completions.create(model="prod-reasoner", messages=MESSAGES, max_tokens=10)
    assert sdk.chat.completions.create(model="prod-reasoner", messages=MESSAGES, max_completion_tokens=10).choices


def history(call_id: str, **assistant_extra: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
            **assistant_extra,
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C"},
    ]


def test_sdk_sees_a_tool_call_id_over_40_characters_refused() -> None:
    with pytest.raises(openai.BadRequestError) as info:
        openai_sdk(FakeOpenAI()).chat.completions.create(model="gpt-4o", messages=history(LONG_ID))  # type: ignore[arg-type]
    assert info.value.code == "string_above_max_length"
    assert info.value.param == "messages[1].tool_calls[0].id"
    assert str(info.value.message).endswith(
        "Invalid 'messages[1].tool_calls[0].id': string too long. Expected a string with maximum length 40, "
        f"but got a string with length {len(LONG_ID)} instead."
    )
    assert openai_sdk(FakeOpenAI()).chat.completions.create(model="gpt-4o", messages=history("c" * 40)).choices  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"thinking_blocks": [{"type": "thinking", "thinking": "x", "signature": "s"}]}, "messages[1].thinking_blocks"),
        ({"reasoning_content": "x"}, "messages[1].reasoning_content"),
    ],
)
def test_sdk_sees_unknown_message_fields_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        openai_sdk(FakeOpenAI()).chat.completions.create(model="gpt-4o", messages=history("call_1", **extra))  # type: ignore[arg-type]
    assert (info.value.code, info.value.param) == ("unknown_parameter", param)
    assert f"Unknown parameter: '{param}'." in str(info.value)
    key = param.rsplit(".", 1)[-1]
    with pytest.raises(openai.BadRequestError, match=re.escape(f"('{key}' was unexpected) - 'messages.1'")):
        azure_sdk(FakeOpenAI()).chat.completions.create(model="gpt-4o", messages=history("call_1", **extra))  # type: ignore[arg-type]


def test_sdk_sees_google_extra_content_on_a_tool_call_refused() -> None:
    messages = history("call_1")
    messages[1]["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": "c2ln"}}
    with pytest.raises(openai.BadRequestError) as info:
        openai_sdk(FakeOpenAI()).chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert info.value.param == "messages[1].tool_calls[0].extra_content"


@pytest.mark.parametrize("version", ["2024-02-15-preview", "2024-06-01", "2024-08-01-preview"])
def test_sdk_sees_old_api_versions_refuse_stream_options(version: str) -> None:
    sdk = openai.AzureOpenAI(
        azure_endpoint=AZURE,
        api_key=AZURE_KEY,
        api_version=version,
        http_client=http_client(FakeOpenAI()),
        max_retries=0,
    )
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: stream_options"):
        list(
            sdk.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: max_completion_tokens"):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=10)
    assert sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10).choices


@pytest.mark.parametrize("version", ["2024-09-01-preview", "2024-10-21", "2025-04-01-preview"])
def test_sdk_current_api_versions_take_stream_options(version: str) -> None:
    sdk = openai.AzureOpenAI(
        azure_endpoint=AZURE,
        api_key=AZURE_KEY,
        api_version=version,
        http_client=http_client(FakeOpenAI()),
        max_retries=0,
    )
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None


# -- embeddings: the SDK reads the fake's replies (its default is encoding_format="base64") -------


def test_sdk_embeddings_default_base64_is_decoded() -> None:
    fake = FakeOpenAI()
    reply = openai_sdk(fake).embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    # The SDK asks for base64 when the caller names no format, and decodes it to floats itself.
    assert fake.requests[0].body["encoding_format"] == "base64"
    assert [d.embedding for d in reply.data] == [vector_for("hello world", 1536), vector_for("bye", 1536)]
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.model == "text-embedding-3-small"
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (3, 3)
    assert fake.requests[0].path == "/v1/embeddings"


def test_sdk_embeddings_float_and_dimensions() -> None:
    fake = FakeOpenAI()
    reply = openai_sdk(fake).embeddings.create(
        model="text-embedding-3-large", input="hello", dimensions=256, encoding_format="float"
    )
    assert reply.data[0].embedding == vector_for("hello", 256)
    assert sum(v * v for v in reply.data[0].embedding) == pytest.approx(1.0, abs=1e-5)


def test_sdk_azure_embeddings_url_and_key() -> None:
    fake = FakeOpenAI(deployment_models={"emb-prod": "text-embedding-3-small"})
    reply = azure_sdk(fake).embeddings.create(model="emb-prod", input=["a"])
    assert reply.data[0].embedding == vector_for("a", 1536)
    seen = fake.requests[0]
    assert (seen.route, seen.deployment, seen.auth_header, seen.query) == (
        "azure",
        "emb-prod",
        "api-key",
        {"api-version": "2024-10-21"},
    )
    assert seen.path == "/openai/deployments/emb-prod/embeddings"


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        ("text-embedding-ada-002", {"dimensions": 256}, "does not support specifying dimensions"),
        ("text-embedding-3-small", {"dimensions": 4096}, "dimensions"),
        ("text-embedding-3-small", {"input": ""}, "input"),
        ("text-embedding-3-small", {"input": ["x"] * 2049}, "input"),
    ],
    ids=["ada-dimensions", "too-many-dimensions", "empty", "over-2048"],
)
def test_sdk_raises_bad_request_for_invalid_embeddings(model: str, kwargs: dict[str, Any], message: str) -> None:
    fake = FakeOpenAI()
    params: dict[str, Any] = {"model": model, "input": "hello", **kwargs}
    with pytest.raises(openai.BadRequestError, match=message):
        openai_sdk(fake).embeddings.create(**params)


def test_sdk_embeddings_errors_are_its_error_types() -> None:
    fake = FakeOpenAI(invalid_keys={"sk-revoked-0000"})
    fake.push("rate_limit", retry_after="3")
    with pytest.raises(openai.RateLimitError):
        openai_sdk(fake).embeddings.create(model="text-embedding-3-small", input="hi")
    with pytest.raises(openai.AuthenticationError):
        openai_sdk(fake, key="sk-revoked-0000").embeddings.create(model="text-embedding-3-small", input="hi")
