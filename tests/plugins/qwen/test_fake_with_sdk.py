"""The fake is checked against the official ``dashscope`` SDK (a real socket on 127.0.0.1): the
SDK must parse the fake's replies and report its errors, and the plugin's requests must carry
what the SDK sends for the same call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dashscope
import pytest
from dashscope import Generation, MultiModalConversation, TextEmbedding

from llm_factory_core import LLMFactory

from .conftest import make_factory, qwen_config
from .fake_dashscope import (
    ERRORS,
    KEY,
    NON_STREAM_THINKING,
    REQUIRED_ERROR,
    STREAM_ONLY_ERROR,
    THINKING_TOOL_CHOICE_ERROR,
    URL_ERROR,
    FakeDashScope,
    Turn,
)
from .fake_embeddings import NATIVE_EMBEDDINGS_PATH, vector_for

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CALL = {"id": "call_29a8b1", "name": "get_weather", "arguments": '{"city": "杭州"}'}
NAMED = {"type": "function", "function": {"name": "get_weather"}}

# Today's model rules, as the official SDKs see them (the fake's rules cite their sources).
REFUSED = [
    ("qwen3-32b", {}, NON_STREAM_THINKING),  # thinks by default
    ("qwen3-235b-a22b", {"enable_thinking": True}, NON_STREAM_THINKING),
    ("qwq-plus", {}, STREAM_ONLY_ERROR),
    ("qwen3-30b-a3b-thinking-2507", {}, STREAM_ONLY_ERROR),
    ("qwen-turbo", {"tools": TOOLS, "tool_choice": "required"}, REQUIRED_ERROR),
    ("qwen-plus", {"tools": TOOLS, "tool_choice": NAMED, "enable_thinking": True}, THINKING_TOOL_CHOICE_ERROR),
]
ACCEPTED = [
    ("qwen3-32b", {"enable_thinking": False}),
    ("qwen3.5-plus", {"enable_thinking": False}),  # commercial: no non-streaming rule modelled
    ("qwen-turbo", {"tools": TOOLS, "tool_choice": "auto"}),
    ("qwen-plus", {"tools": TOOLS, "tool_choice": NAMED}),  # thinking off by default
]


@pytest.fixture
def server(fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = fake.live_url
    assert url is not None
    monkeypatch.setattr(dashscope, "base_http_api_url", url + "/api/v1")
    yield url


def sdk_call(stream: bool = False, **kwargs: Any) -> Any:
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("result_format", "message")
    return Generation.call(model=kwargs.pop("model", "qwen-turbo"), api_key=KEY, stream=stream, **kwargs)


# -- the SDK parses the fake ----------------------------------------------------------------------


def test_sdk_parses_a_reply(fake: FakeDashScope, server: str) -> None:
    fake.queue(Turn(pieces=["1+1 ", "等于 2。"], input_tokens=8))
    reply = sdk_call()
    assert reply.status_code == 200
    assert reply.output.choices[0].message.content == "1+1 等于 2。"
    assert reply.output.choices[0].finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.total_tokens) == (8, 2, 10)
    assert reply.request_id and reply.request_id == reply.headers.get("x-request-id")


def test_sdk_parses_a_legacy_text_reply_when_result_format_is_not_message(fake: FakeDashScope, server: str) -> None:
    reply = Generation.call(model="qwen-turbo", api_key=KEY, messages=MESSAGES)
    assert reply.status_code == 200 and reply.output.text == "Hello from DashScope"
    assert reply.output.choices is None
    assert "result_format" not in fake.requests[-1].body["parameters"]


def test_sdk_parses_an_incremental_stream(fake: FakeDashScope, server: str) -> None:
    fake.queue(Turn(pieces=["a", "b", "c"]))
    events = list(sdk_call(stream=True, incremental_output=True))
    assert all(e.status_code == 200 for e in events)
    assert [e.output.choices[0].message.content for e in events] == ["a", "b", "c", ""]
    assert [e.output.choices[0].finish_reason for e in events] == ["null", "null", "null", "stop"]
    assert [e.usage.output_tokens for e in events] == [1, 2, 3, 4], "usage is cumulative"
    assert len({e.request_id for e in events}) == 1


def test_sdk_sees_cumulative_text_without_incremental_output(fake: FakeDashScope, server: str) -> None:
    fake.queue(Turn(pieces=["a", "b", "c"]))
    events = list(sdk_call(stream=True))  # the SDK sends no incremental_output here
    assert "incremental_output" not in fake.requests[-1].body["parameters"]
    assert [e.output.choices[0].message.content for e in events] == ["a", "ab", "abc", "abc"]


def test_sdk_parses_reasoning_and_tool_call_streams(fake: FakeDashScope, server: str) -> None:
    fake.queue(Turn(pieces=["ok"], reasoning=["嗯", "想"]))
    events = list(sdk_call(stream=True, incremental_output=True, model="qwen-plus", enable_thinking=True))
    messages = [e.output.choices[0].message for e in events]
    assert "".join(m.get("reasoning_content", "") for m in messages) == "嗯想"
    assert "".join(m.content for m in messages) == "ok"
    assert fake.requests[-1].body["parameters"]["enable_thinking"] is True

    fake.queue(Turn(pieces=[], tool_calls=[CALL]))
    events = list(sdk_call(stream=True, incremental_output=True, tools=TOOLS))
    fragments = [tc for e in events for tc in e.output.choices[0].message.tool_calls]
    assert fragments[0]["id"] == CALL["id"] and fragments[1]["id"] == ""
    assert "".join(f["function"]["arguments"] for f in fragments) == CALL["arguments"]
    assert events[-1].output.choices[0].finish_reason == "tool_calls"


def test_sdk_parses_a_multimodal_reply(fake: FakeDashScope, server: str) -> None:
    messages = [{"role": "user", "content": [{"image": "https://example.test/cat.png"}, {"text": "What is it?"}]}]
    reply = MultiModalConversation.call(model="qwen-vl-max", api_key=KEY, messages=messages)
    assert reply.status_code == 200
    assert reply.output.choices[0].message.content == [{"text": "Hello from DashScope"}]
    assert fake.requests[-1].path.endswith("/services/aigc/multimodal-generation/generation")


# -- the SDK reports the fake's errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["auth", "rate_limit", "quota", "arrearage", "content_filter", "bad_request", "server"]
)
def test_sdk_reports_http_errors(fake: FakeDashScope, server: str, kind: str) -> None:
    error = ERRORS[kind]
    fake.queue(Turn(error=error))
    reply = sdk_call()
    assert (reply.status_code, reply.code, reply.message) == (error.status, error.code, error.message)
    assert reply.output is None


def test_sdk_reports_a_wrong_key(fake: FakeDashScope, server: str) -> None:
    reply = Generation.call(model="qwen-turbo", api_key="sk-wrong", messages=MESSAGES, result_format="message")
    assert (reply.status_code, reply.code) == (401, "InvalidApiKey")


def test_sdk_reports_an_error_event_inside_a_200_stream(fake: FakeDashScope, server: str) -> None:
    fake.queue(Turn(pieces=["a", "b"], stream_error=ERRORS["content_filter"], error_after=1))
    events = list(sdk_call(stream=True, incremental_output=True))
    assert events[0].status_code == 200 and events[0].output.choices[0].message.content == "a"
    assert events[-1].status_code != 200 and events[-1].code == "DataInspectionFailed"
    assert len(events) == 2


def test_sdk_reports_the_fakes_own_validation(fake: FakeDashScope, server: str) -> None:
    reply = sdk_call(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    assert (reply.status_code, reply.code) == (400, "InvalidParameter")


@pytest.mark.parametrize(("model", "kwargs", "error"), REFUSED, ids=[r[0] for r in REFUSED])
def test_sdk_sees_todays_model_rules(fake: FakeDashScope, server: str, model: str, kwargs: Any, error: Any) -> None:
    api = MultiModalConversation if model.startswith("qwen3.5") else Generation
    reply = api.call(model=model, api_key=KEY, messages=MESSAGES, result_format="message", **kwargs)
    assert (reply.status_code, reply.code, reply.message) == (error.status, error.code, error.message)


@pytest.mark.parametrize(("model", "kwargs"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_sdk_calls_today_models_the_accepted_way(fake: FakeDashScope, server: str, model: str, kwargs: Any) -> None:
    api = MultiModalConversation if model.startswith("qwen3.5") else Generation
    reply = api.call(model=model, api_key=KEY, messages=MESSAGES, result_format="message", **kwargs)
    assert reply.status_code == 200, reply.message


def test_sdk_streams_a_thinking_model_and_sees_a_refused_stream_as_an_error_event(
    fake: FakeDashScope, server: str
) -> None:
    fake.queue(Turn(pieces=["ok"], reasoning=["嗯"]))
    events = list(sdk_call(stream=True, incremental_output=True, model="qwq-plus"))
    assert "".join(e.output.choices[0].message.get("reasoning_content", "") for e in events) == "嗯"
    # Qwen3.5 on the text API: a 200 stream holding one event:error (status from :HTTP_STATUS/400).
    events = list(sdk_call(stream=True, incremental_output=True, model="qwen3.5-plus"))
    assert [(e.status_code, e.code, e.message) for e in events] == [(400, URL_ERROR.code, URL_ERROR.message)]


# -- the plugin sends what the SDK sends ------------------------------------------------------------


def _plugin_request(fake: FakeDashScope, *, stream: bool, **params: Any) -> Any:
    factory: LLMFactory = make_factory(fake, qwen_config())
    with factory:
        if stream:
            list(factory.stream(MESSAGES, model="qwen-turbo", **params))
        else:
            factory.chat(MESSAGES, model="qwen-turbo", **params)
    return fake.requests[-1]


SAME_HEADERS = ("authorization", "accept", "content-type", "x-dashscope-sse", "x-accel-buffering")


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_plugin_request_matches_the_sdk(fake: FakeDashScope, server: str, stream: bool) -> None:
    sdk_kwargs: dict[str, Any] = {
        "temperature": 0.5,
        "top_p": 0.8,
        "max_tokens": 100,
        "stop": ["\nObservation"],
        "seed": 1234,
        "n": 2,
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "enable_search": True,
        "enable_thinking": False,
        "presence_penalty": 0.5,
    }
    if stream:
        sdk_kwargs["incremental_output"] = True
    list(sdk_call(stream=True, **sdk_kwargs)) if stream else sdk_call(**sdk_kwargs)
    sdk = fake.requests[-1]
    plugin_params = {
        k: v for k, v in sdk_kwargs.items() if k not in ("enable_search", "enable_thinking", "incremental_output")
    }
    plugin_params["extra_body"] = {"enable_search": True, "enable_thinking": False}
    mine = _plugin_request(fake, stream=stream, **plugin_params)
    assert mine.path == sdk.path
    assert {h: mine.headers.get(h) for h in SAME_HEADERS} == {h: sdk.headers.get(h) for h in SAME_HEADERS}
    assert mine.body == sdk.body


# -- compatible mode: the official OpenAI SDK is its client ---------------------------------------


def test_openai_sdk_parses_compatible_mode(fake: FakeDashScope, server: str) -> None:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=server + "/compatible-mode/v1", max_retries=0)
    try:
        fake.queue(Turn(pieces=["text ", "probe ok"], reasoning=["hm"]))
        reply = client.chat.completions.create(
            model="qwen-plus",
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_body={"enable_thinking": True},
        )
        assert reply.choices[0].message.content == "text probe ok"
        assert reply.choices[0].message.model_extra == {"reasoning_content": "hm"}
        assert reply.usage is not None and reply.usage.total_tokens == 11

        fake.queue(Turn(pieces=["a", "b"]))
        chunks = list(
            client.chat.completions.create(
                model="qwen-plus",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None

        for kind, cls in [
            ("rate_limit", openai.RateLimitError),
            ("auth", openai.AuthenticationError),
            ("content_filter", openai.BadRequestError),
            ("server", openai.InternalServerError),
        ]:
            fake.queue(Turn(error=ERRORS[kind]))
            with pytest.raises(cls):
                client.chat.completions.create(model="qwen-plus", messages=MESSAGES)  # type: ignore[arg-type]

        fake.queue(Turn(pieces=["a", "b"], stream_error=ERRORS["content_filter"], error_after=2))
        with pytest.raises(openai.APIError, match="inappropriate"):
            list(client.chat.completions.create(model="qwen-plus", messages=MESSAGES, stream=True))  # type: ignore[arg-type]

        for model, kwargs, error in REFUSED:
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(model=model, messages=MESSAGES, **_openai_kwargs(kwargs))  # type: ignore[arg-type]
            assert info.value.status_code == 400 and error.message in str(info.value), model
        for model, kwargs in ACCEPTED:
            client.chat.completions.create(model=model, messages=MESSAGES, **_openai_kwargs(kwargs))  # type: ignore[arg-type]
        chunks = list(
            client.chat.completions.create(model="qwen3-32b", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        )
        assert chunks[-1].choices[0].finish_reason == "stop", "streaming with thinking on is accepted"
    finally:
        client.close()


def _openai_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """DashScope's own parameters go through the OpenAI SDK's ``extra_body``."""
    out = {k: v for k, v in kwargs.items() if k != "enable_thinking"}
    if "enable_thinking" in kwargs:
        out["extra_body"] = {"enable_thinking": kwargs["enable_thinking"]}
    return out


# -- the SDK's aiohttp client parses the same framing ---------------------------------------------


@pytest.mark.anyio
async def test_async_sdk_parses_stream_and_error_event(fake: FakeDashScope, server: str) -> None:
    from dashscope import AioGeneration
    from dashscope.api_entities.aio_session import close_shared_aio_session

    try:
        fake.queue(Turn(pieces=["x", "y"]), Turn(pieces=["x"], stream_error=ERRORS["rate_limit"], error_after=1))
        stream = await AioGeneration.call(
            model="qwen-turbo",
            api_key=KEY,
            messages=MESSAGES,
            result_format="message",
            stream=True,
            incremental_output=True,
        )
        events = [e async for e in stream]
        assert [e.output.choices[0].message.content for e in events] == ["x", "y", ""]
        stream = await AioGeneration.call(
            model="qwen-turbo",
            api_key=KEY,
            messages=MESSAGES,
            result_format="message",
            stream=True,
            incremental_output=True,
        )
        events = [e async for e in stream]
        assert events[-1].code == "Throttling.RateQuota" and events[-1].status_code != 200
    finally:
        await close_shared_aio_session()


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_plugin_multimodal_request_matches_the_sdk(fake: FakeDashScope, server: str, stream: bool) -> None:
    url = "https://example.test/cat.png"
    native = [{"role": "user", "content": [{"image": url}, {"text": "What is it?"}]}]
    kwargs: dict[str, Any] = {"stream": True, "incremental_output": True} if stream else {}
    reply = MultiModalConversation.call(
        model="qwen-vl-max", api_key=KEY, messages=native, result_format="message", **kwargs
    )
    list(reply) if stream else reply
    sdk = fake.requests[-1]
    openai_parts = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is it?"}]
    with make_factory(fake, qwen_config(model_name="qwen-vl-max")) as factory:
        messages = [{"role": "user", "content": openai_parts}]
        list(factory.stream(messages)) if stream else factory.chat(messages)
    mine = fake.requests[-1]
    assert mine.path == sdk.path
    assert {h: mine.headers.get(h) for h in SAME_HEADERS} == {h: sdk.headers.get(h) for h in SAME_HEADERS}
    assert mine.body == sdk.body


@pytest.mark.parametrize("model", ["qwen-plus", "qwen3-32b"])
def test_plugin_thinking_request_matches_the_sdk(fake: FakeDashScope, server: str, model: str) -> None:
    """``reasoning_effort="high"`` sends what the SDK sends for ``enable_thinking=True,
    thinking_budget=32768`` (a plain call to these models goes upstream as this stream)."""
    list(sdk_call(stream=True, incremental_output=True, model=model, enable_thinking=True, thinking_budget=32768))
    sdk = fake.requests[-1]
    with make_factory(fake, qwen_config(model_name=model)) as factory:
        factory.chat(MESSAGES, reasoning_effort="high")
    mine = fake.requests[-1]
    assert mine.path == sdk.path
    assert {h: mine.headers.get(h) for h in SAME_HEADERS} == {h: sdk.headers.get(h) for h in SAME_HEADERS}
    assert mine.body == sdk.body


# -- embeddings: the SDKs parse the fake, and the plugin sends what the SDK sends -------------------

EMBED_TEXTS = ["风急天高猿啸哀", "The quick brown fox"]


def test_sdk_parses_a_native_embeddings_reply(fake: FakeDashScope, server: str) -> None:
    reply = TextEmbedding.call(
        model="text-embedding-v4", input=EMBED_TEXTS, api_key=KEY, dimension=256, text_type="query"
    )
    assert reply.status_code == 200, reply.message
    embeddings = reply.output["embeddings"]
    assert [e["text_index"] for e in embeddings] == [0, 1]
    assert [e["embedding"] for e in embeddings] == [vector_for(t, 256, "query") for t in EMBED_TEXTS]
    assert reply.usage["total_tokens"] == 1 + 4
    assert fake.requests[-1].path == NATIVE_EMBEDDINGS_PATH


def test_sdk_reports_the_embeddings_batch_limit(fake: FakeDashScope, server: str) -> None:
    reply = TextEmbedding.call(model="text-embedding-v3", input=[f"t{i}" for i in range(11)], api_key=KEY)
    assert (reply.status_code, reply.code) == (400, "InvalidParameter")
    assert "should not be larger than 10" in reply.message
    assert (
        TextEmbedding.call(model="text-embedding-v2", input=[f"t{i}" for i in range(25)], api_key=KEY).status_code
        == 200
    )


def test_sdk_reports_embeddings_http_errors(fake: FakeDashScope, server: str) -> None:
    fake.queue(Turn(error=ERRORS["rate_limit"]))
    reply = TextEmbedding.call(model="text-embedding-v4", input="hi", api_key=KEY)
    assert (reply.status_code, reply.code) == (429, "Throttling.RateQuota")


@pytest.mark.parametrize("one_text", [True, False], ids=["one-text", "texts"])
def test_plugin_embeddings_request_matches_the_sdk(fake: FakeDashScope, server: str, one_text: bool) -> None:
    texts: Any = EMBED_TEXTS[0] if one_text else EMBED_TEXTS
    TextEmbedding.call(model="text-embedding-v4", input=texts, api_key=KEY, dimension=512, text_type="document")
    sdk = fake.requests[-1]
    with make_factory(fake, qwen_config(model_name="embed", model="text-embedding-v4")) as factory:
        factory.embed(texts, model="embed", dimensions=512, text_type="document")
    ours = fake.requests[-1]
    assert ours.path == sdk.path
    assert ours.body == sdk.body, "the plugin's native embeddings body differs from the SDK's"


def test_openai_sdk_parses_compatible_embeddings(fake: FakeDashScope, server: str) -> None:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=server + "/compatible-mode/v1", max_retries=0)
    with client:
        # No encoding_format: the SDK asks base64 and takes the floats DashScope answers.
        reply = client.embeddings.create(model="text-embedding-v4", input=EMBED_TEXTS, dimensions=128)
        assert fake.requests[-1].body["encoding_format"] == "base64"
        assert [d.embedding for d in reply.data] == [vector_for(t, 128) for t in EMBED_TEXTS]
        assert reply.usage.total_tokens == 5 and reply.model == "text-embedding-v4"
        with pytest.raises(openai.BadRequestError, match="should not be larger than 10"):
            client.embeddings.create(model="text-embedding-v4", input=[f"t{i}" for i in range(11)])
        fake.queue(Turn(error=ERRORS["auth"]))
        with pytest.raises(openai.AuthenticationError):
            client.embeddings.create(model="text-embedding-v4", input="hi")
