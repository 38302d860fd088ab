"""The pure translation functions: OpenAI request -> native body, native reply / events ->
OpenAI shapes, native error body -> typed error class."""

from __future__ import annotations

from typing import Any

import pytest

from llm_factory_core import (
    AuthenticationError,
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    RateLimitError,
    ServerError,
)
from llm_factory_qwen import (
    NativeStreamState,
    classify_native_error,
    decode_native_completion,
    encode_native_request,
    wants_multimodal,
)
from llm_factory_qwen._native_response import map_finish_reason, map_usage

USER = {"role": "user", "content": "Hi"}


def encode(stream: bool = False, multimodal: bool = False, **fields: Any) -> dict[str, Any]:
    fields.setdefault("messages", [USER])
    return encode_native_request(ChatRequest(**fields), "qwen-plus", stream=stream, multimodal=multimodal)


# -- request ----------------------------------------------------------------------------------------


def test_parameters_are_mapped() -> None:
    body = encode(
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        stop="END",
        seed=7,
        n=2,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        parallel_tool_calls=True,
        response_format={"type": "json_object"},
        frequency_penalty=0.4,
        user="u-1",
    )
    assert body["model"] == "qwen-plus"
    assert body["input"] == {"messages": [USER]}
    assert body["parameters"] == {
        "result_format": "message",
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": "END",
        "seed": 7,
        "n": 2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": True,
        "response_format": {"type": "json_object"},
    }


def test_qwen_options_pass_through_extra_body() -> None:
    body = encode(
        extra_body={
            "enable_search": True,
            "enable_thinking": True,
            "thinking_budget": 512,
            "search_options": {"forced_search": True},
            "parameters": {"top_k": 20},
            "input": {"history": []},
        },
        repetition_penalty=1.1,  # an unknown top-level field is a Qwen parameter too
    )
    params = body["parameters"]
    assert params["enable_search"] is True and params["enable_thinking"] is True
    assert params["thinking_budget"] == 512 and params["search_options"] == {"forced_search": True}
    assert params["top_k"] == 20 and params["repetition_penalty"] == 1.1
    assert body["input"] == {"messages": [USER], "history": []}
    assert "input" not in params and "parameters" not in params


def test_streams_always_ask_for_incremental_output() -> None:
    body = encode(stream=True, extra_body={"incremental_output": False})
    assert body["parameters"]["incremental_output"] is True
    assert "stream" not in body["parameters"], "the SDK sends no stream parameter; the header decides"
    assert "incremental_output" not in encode(stream=False)["parameters"]


def test_tool_turns_keep_openai_shape_and_null_content_becomes_empty() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "developer", "content": "rules"},
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]
    sent = encode(messages=messages)["input"]["messages"]
    assert sent[0] == {"role": "system", "content": "rules"}
    assert sent[2] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert sent[3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}


def test_text_parts_become_a_string_for_text_models() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert encode(messages=messages)["input"]["messages"][0]["content"] == "ab"


def test_multimodal_parts_are_kept_as_native_parts() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
        {"type": "video_url", "video_url": {"url": "https://x.test/v.mp4"}},
        {"image": "https://x.test/native.png"},
    ]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}]
    sent = encode(messages=messages, multimodal=True)["input"]["messages"]
    assert sent[0]["content"] == [{"text": "Be brief."}]
    assert sent[1]["content"] == [
        {"text": "What is this?"},
        {"image": "https://x.test/a.png"},
        {"image": "data:image/png;base64,iVBOR"},
        {"audio": "data:audio/wav;base64,UklGR"},
        {"video": "https://x.test/v.mp4"},
        {"image": "https://x.test/native.png"},
    ]


def test_image_parts_are_never_flattened_away() -> None:
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]
    with pytest.raises(ValueError, match="multimodal"):
        encode(messages=messages, multimodal=False)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("qwen-vl-max", True),
        ("qwen2.5-vl-72b-instruct", True),
        ("qwen3-vl-plus", True),
        ("qvq-max", True),
        ("qwen-omni-turbo", True),
        ("qwen2-audio-instruct", True),
        ("qwen-turbo", False),
        ("qwen-plus", False),
        ("qwen3-235b-a22b", False),
        ("qwen3-max", False),
        ("qwen3.5-plus", True),  # "the DashScope API for the Qwen3.5 series uses a multimodal interface"
        ("qwen3.5-flash-2026-02-23", True),
        ("qwen3.6-plus", True),
    ],
)
def test_multimodal_models_are_recognised(model: str, expected: bool) -> None:
    assert wants_multimodal(model, [USER]) is expected


def test_image_parts_select_the_multimodal_path_and_settings_force_it() -> None:
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
    assert wants_multimodal("qwen-plus", [image]) is True
    assert wants_multimodal("qwen-vl-max", [USER], forced=False) is False
    assert wants_multimodal("qwen-plus", [USER], forced=True) is True


# -- non-streaming reply --------------------------------------------------------------------------


def completion(data: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(decode_native_completion(data, "qwen-plus"))


def test_reply_becomes_a_chat_completion() -> None:
    result = completion(
        {
            "output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "2"}}]},
            "usage": {
                "total_tokens": 47,
                "output_tokens": 39,
                "input_tokens": 8,
                "prompt_tokens_details": {"cached_tokens": 4},
                "output_tokens_details": {"reasoning_tokens": 30},
            },
            "request_id": "e764bfe3-c0b7-97a0-ae57-cd99e1580960",
        }
    )
    assert result.id == "chatcmpl-e764bfe3-c0b7-97a0-ae57-cd99e1580960", "OpenAI's id shape, request_id kept"
    assert result.model == "qwen-plus" and result.object == "chat.completion"
    assert result.choices[0].message.content == "2" and result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 8,
        "completion_tokens": 39,
        "total_tokens": 47,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


def test_tool_calls_finish_as_tool_calls_even_when_dashscope_says_stop() -> None:
    call = {
        "function": {"name": "get_current_weather", "arguments": '{"location": "杭州"}'},
        "index": 0,
        "id": "call_cec4c19d27624537b583af",
        "type": "function",
    }
    result = completion(
        {
            "output": {
                "choices": [
                    {"finish_reason": "stop", "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
                ]
            },
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "request_id": "r",
        }
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].model_dump(exclude_none=True) == {
        "id": "call_cec4c19d27624537b583af",
        "type": "function",
        "function": {"name": "get_current_weather", "arguments": '{"location": "杭州"}'},
    }
    assert result.usage is not None and result.usage.total_tokens == 2


def test_reasoning_multimodal_content_and_legacy_text() -> None:
    thinking = completion(
        {
            "output": {
                "choices": [
                    {
                        "finish_reason": "length",
                        "message": {
                            "role": "assistant",
                            "content": [{"text": "a"}, {"text": "b"}],
                            "reasoning_content": "hm",
                        },
                    }
                ]
            },
            "request_id": "r",
        }
    )
    assert thinking.choices[0].message.content == "ab"
    assert thinking.choices[0].message.get("reasoning_content") == "hm"
    assert thinking.choices[0].finish_reason == "length"
    legacy = completion({"output": {"finish_reason": "stop", "text": "old"}, "request_id": "r"})
    assert legacy.choices[0].message.content == "old" and legacy.choices[0].finish_reason == "stop"


def test_finish_reasons_and_usage_mapping() -> None:
    assert map_finish_reason("null", False) is None
    assert map_finish_reason(None, True) is None
    assert map_finish_reason("tool_calls", True) == "tool_calls"
    assert map_finish_reason("length", True) == "length"
    assert map_finish_reason("weird", False) == "stop"
    assert map_usage(None) is None
    assert map_usage({"input_tokens": 3, "output_tokens": 4}) == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }


# -- stream events ----------------------------------------------------------------------------------


def event(message: dict[str, Any], finish: str = "null", output_tokens: int = 1, **choice: Any) -> dict[str, Any]:
    return {
        "output": {"choices": [{"message": {"role": "assistant", **message}, "finish_reason": finish, **choice}]},
        "usage": {"total_tokens": 8 + output_tokens, "input_tokens": 8, "output_tokens": output_tokens},
        "request_id": "d272255f",
    }


def feed(state: NativeStreamState, *events: dict[str, Any]) -> list[ChatCompletionChunk]:
    out = []
    for e in events:
        chunk = state.feed(e)
        if chunk is not None:
            out.append(ChatCompletionChunk.model_validate(chunk))
    return out


def test_stream_events_become_chunks() -> None:
    state = NativeStreamState("qwen-plus")
    chunks = feed(
        state,
        event({"content": "1"}, output_tokens=1),
        event({"content": "+"}, output_tokens=2),
        event({"content": ""}, "stop", output_tokens=3),
    )
    assert [c.choices[0].delta.content for c in chunks] == ["1", "+", None]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "stop"]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[1].choices[0].delta.role is None
    assert {c.id for c in chunks} == {"chatcmpl-d272255f"} and state.finished
    usage = ChatCompletionChunk.model_validate(state.usage_chunk())
    assert usage.choices == [] and usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens) == (8, 3, 11)


def test_reasoning_deltas_are_kept() -> None:
    state = NativeStreamState("qwq-plus")
    chunks = feed(
        state,
        event({"content": "", "reasoning_content": "嗯"}),
        event({"content": "ok", "reasoning_content": ""}, "stop"),
    )
    assert chunks[0].choices[0].delta.get("reasoning_content") == "嗯" and chunks[0].has_content()
    assert chunks[1].choices[0].delta.content == "ok" and chunks[1].choices[0].delta.get("reasoning_content") is None


def test_tool_call_fragments_keep_stable_indices() -> None:
    state = NativeStreamState("qwen-plus")

    def fragment(index: int | None, call_id: str, args: str, name: str | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"id": call_id, "type": "function", "function": {"arguments": args}}
        if index is not None:
            call["index"] = index
        if name:
            call["function"]["name"] = name
        return {"content": "", "tool_calls": [call]}

    chunks = feed(
        state,
        event(fragment(0, "call_a", '{"location": "', "get_weather"), index=0),
        event(fragment(0, "", '杭州"}'), index=0),
        # a second parallel call reusing native index 0, told apart only by its id
        event(fragment(0, "call_b", '{"location": "', "get_weather"), index=0),
        event(fragment(None, "", '上海"}'), index=0),
        event({"content": ""}, "stop", index=0),
    )
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.index for d in deltas] == [0, 0, 1, 1]
    assert [d.id for d in deltas] == ["call_a", None, "call_b", None]
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    calls: dict[int, str] = {}
    for d in deltas:
        assert d.function is not None
        calls[d.index] = calls.get(d.index, "") + (d.function.arguments or "")
    assert calls == {0: '{"location": "杭州"}', 1: '{"location": "上海"}'}
    assert chunks[-1].choices[0].finish_reason == "tool_calls", "DashScope said stop after tool calls"


def test_fragment_without_id_at_a_new_index_gets_a_generated_id() -> None:
    state = NativeStreamState("qwen-plus")
    chunk = state.feed(event({"tool_calls": [{"index": 3, "id": "", "function": {"name": "f", "arguments": ""}}]}))
    assert chunk is not None
    delta = chunk["choices"][0]["delta"]["tool_calls"][0]
    assert delta["index"] == 0 and delta["id"].startswith("call_") and delta["function"]["name"] == "f"


def test_several_choices_finish_independently() -> None:
    state = NativeStreamState("qwen-plus")
    feed(state, event({"content": "a"}, index=0), event({"content": "b"}, index=1))
    feed(state, event({"content": ""}, "stop", index=0))
    assert not state.finished
    feed(state, event({"content": ""}, "stop", index=1))
    assert state.finished


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "cls"),
    [
        (429, "Throttling", "Requests throttling triggered.", RateLimitError),
        (429, "Throttling.RateQuota", "Requests rate limit exceeded", RateLimitError),
        (429, "Throttling.BurstRate", "Request rate increased too quickly.", RateLimitError),
        (429, "Throttling.AllocationQuota", "Allocated quota exceeded", InsufficientQuotaError),
        (400, "Arrearage", "Access denied, please make sure your account is in good standing.", InsufficientQuotaError),
        (401, "InvalidApiKey", "Invalid API-key provided.", AuthenticationError),
        (403, "AccessDenied.Unpurchased", "Access to model denied.", AuthenticationError),
        (400, "DataInspectionFailed", "Input data may contain inappropriate content.", ContentFilterError),
        (400, "InvalidParameter", "Role must be user or assistant", BadRequestError),
        (400, "InvalidParameter", "Range of input length should be [1, 30720]", ContextLengthError),
        (400, "InternalError.Algo.InvalidParameter", "Range of input length should be [1, 6000]", ContextLengthError),
        (400, "BadRequest.EmptyInput", "Required input parameter missing from request.", BadRequestError),
        (500, "InternalError", "An internal error has occured", ServerError),
        (500, "InternalError.Algo", "Algorithm error", ServerError),
        (503, "", "", ServerError),
        (502, "Unknown", "bad gateway", ServerError),
    ],
)
def test_native_errors_are_classified(status: int, code: str, message: str, cls: type) -> None:
    body = f'{{"code": "{code}", "message": "{message}", "request_id": "r"}}'.encode()
    got, text, kwargs = classify_native_error(status, {}, body)
    assert got is cls
    assert kwargs["status"] == status and kwargs["code"] == (code or None)
    assert text == (message or f"HTTP {status}")


def test_error_flags_drive_failover() -> None:
    assert RateLimitError.retryable and not RateLimitError.disables_deployment
    assert InsufficientQuotaError.disables_deployment and AuthenticationError.disables_deployment
    assert not ContentFilterError.retryable and not BadRequestError.retryable
    assert ServerError.retryable


def test_retry_after_and_other_body_forms() -> None:
    _, _, kwargs = classify_native_error(429, {"retry-after": "3"}, b'{"code":"Throttling","message":"x"}')
    assert kwargs["retry_after"] == 3
    cls, message, _ = classify_native_error(400, {}, {"code": "InvalidParameter", "msg": "from msg"})
    assert cls is BadRequestError and message == "from msg"
    cls, message, _ = classify_native_error(502, {}, b"<html>bad gateway</html>")
    assert cls is ServerError and "bad gateway" in message
    openai_style = (
        b'{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}'
    )
    assert classify_native_error(401, {}, openai_style)[0] is AuthenticationError


def test_reasoning_effort_becomes_native_thinking_parameters() -> None:
    def params(model: str, stream: bool, **fields: Any) -> dict[str, Any]:
        request = ChatRequest.model_validate({"messages": [USER], **fields})
        return dict(encode_native_request(request, model, stream=stream, multimodal=False)["parameters"])

    assert params("qwen-plus", True, reasoning_effort="medium") == {
        "result_format": "message",
        "incremental_output": True,
        "enable_thinking": True,
        "thinking_budget": 16384,
    }
    assert (
        params("qwen-plus", True, reasoning_effort="medium", extra_body={"thinking_budget": 9})["thinking_budget"] == 9
    )
    assert params("qwen3-32b", False) == {"result_format": "message", "enable_thinking": False}
    assert "enable_thinking" not in params("qwen3-32b", True)
    assert "reasoning_effort" not in params("qwen-max", False, reasoning_effort="high")


def test_sse_error_frames_are_unwrapped() -> None:
    from llm_factory_qwen._native_errors import unwrap_sse_error

    frame = (
        b"id:1\nevent:error\n:HTTP_STATUS/429\n"
        b'data:{"code":"Throttling.RateQuota","message":"slow down","request_id":"r"}\n\n'
    )
    status, body, native = unwrap_sse_error(200, frame)
    assert (status, native) == (429, True)
    assert body == b'{"code":"Throttling.RateQuota","message":"slow down","request_id":"r"}'
    openai_frame = b'data: {"error": {"message": "bad", "code": "invalid_parameter_error"}}\n\n'
    assert unwrap_sse_error(400, openai_frame) == (
        400,
        b'{"error": {"message": "bad", "code": "invalid_parameter_error"}}',
        False,
    )
    plain = b'{"code":"InvalidApiKey","message":"no"}'
    assert unwrap_sse_error(401, plain) == (401, plain, True)
    assert unwrap_sse_error(502, b"<html>bad gateway</html>") == (502, b"<html>bad gateway</html>", False)
    cls, message, kwargs = classify_native_error(status, {}, body)
    assert (cls, message, kwargs["status"]) == (RateLimitError, "slow down", 429)
