"""Pure translation of history for today's models: media types, images in tool results, other
providers' fields, provider extras, botched tool turns, model rules and families, and a 20,000
message conversation encoded in linear work."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from llm_factory_core import ChatRequest
from llm_factory_core.providers import apply_model_rules
from llm_factory_gemini import GeminiProvider, GeminiSettings
from llm_factory_gemini._decode import StreamState, TurnFailed, decode_response
from llm_factory_gemini._encode import EncodeError, encode_request
from llm_factory_gemini._models import family_of
from llm_factory_gemini._rules import MODEL_RULES

KEY = "AIzaSy-test-key-0001"
PNG = "iVBORw0KGgo="


def encode(model: str = "gemini-2.5-flash", **kw: Any) -> dict[str, Any]:
    return encode_request(ChatRequest(**kw), GeminiSettings(model=model, api_key=KEY))


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


# -- media types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (image(f"data:image/webp;base64,{PNG}"), {"inlineData": {"mimeType": "image/webp", "data": PNG}}),
        (image("https://cdn.test/cat.png?sig=abc"), {"fileData": {"mimeType": "image/png", "fileUri": "https://cdn.test/cat.png?sig=abc"}}),
        (image("https://cdn.test/render?id=42", format="image/webp"),
         {"fileData": {"mimeType": "image/webp", "fileUri": "https://cdn.test/render?id=42"}}),
        (image("gs://bucket/scan.pdf"), {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/scan.pdf"}}),
    ],
)  # fmt: skip
def test_media_types_come_from_the_url_or_the_client(part: dict[str, Any], expected: dict[str, Any]) -> None:
    body = encode(messages=[{"role": "user", "content": [part]}])
    assert body["contents"][0]["parts"] == [expected]


def test_an_extensionless_url_is_never_labelled_jpeg_blindly() -> None:
    with pytest.raises(EncodeError, match=r"cannot tell the media type .*image_url\.format"):
        encode(messages=[{"role": "user", "content": [image("https://cdn.test/render?id=42")]}])


# -- tool results with images ---------------------------------------------------------------------

TOOL_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Screenshot the page"},
    {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "shot", "arguments": "{}"}},
            {"id": "call_b", "type": "function", "function": {"name": "fetch", "arguments": "{}"}},
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_a",
        "content": [
            {"type": "text", "text": '{"ok": true}'},
            image(f"data:image/png;base64,{PNG}"),
            image("https://cdn.test/full.jpg"),
        ],
    },
    {"role": "tool", "tool_call_id": "call_b", "content": "done"},
    {"role": "user", "content": "What do you see?"},
]


def test_gemini_3_takes_images_inside_the_function_response() -> None:
    body = encode("gemini-3-flash-preview", messages=TOOL_HISTORY)
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "shot",
                    "response": {"ok": True},
                    "id": "call_a",
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}],
                }
            },
            {"functionResponse": {"name": "fetch", "response": {"result": "done"}, "id": "call_b"}},
            # URI data is not supported inside function responses: it follows them.
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://cdn.test/full.jpg"}},
            {"text": "What do you see?"},
        ],
    }


def test_gemini_2_5_gets_tool_images_as_user_parts_after_the_responses() -> None:
    body = encode("gemini-2.5-flash", messages=TOOL_HISTORY)
    parts = body["contents"][2]["parts"]
    assert [next(iter(p)) for p in parts] == ["functionResponse", "functionResponse", "inlineData", "fileData", "text"]
    assert "parts" not in parts[0]["functionResponse"]
    assert parts[2] == {"inlineData": {"mimeType": "image/png", "data": PNG}}


# -- other providers' fields ----------------------------------------------------------------------


def test_other_providers_fields_are_dropped() -> None:
    body = encode(
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "x"}}]},
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Claude's thought", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "cmVk"},
                    {"type": "text", "text": "Hello."},
                ],
                "reasoning_content": "DeepSeek's thought",
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "c2ln"}],
            },
            {"role": "user", "content": "Again"},
        ]
    )  # fmt: skip
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello."}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


# -- provider extras -------------------------------------------------------------------------------


def test_extras_merge_rule() -> None:
    request = ChatRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.5,
            "reasoning_effort": "low",
            # top-level unknown fields: what the OpenAI SDK's extra_body becomes through the gateway
            "generation_config": {"top_k": 7, "thinking_config": {"thinking_budget": 64}},
            "labels": {"team_name": "search"},
            "metadata": {"openai": "only"},
            "extra_body": {"generationConfig": {"topK": 9}, "tools": [{"googleSearch": {}}]},
        }
    )
    body = encode_request(request, GeminiSettings(model="gemini-2.5-flash", api_key=KEY))
    assert body["generationConfig"] == {"temperature": 0.5, "topK": 9, "thinkingConfig": {"thinkingBudget": 64}}
    assert body["labels"] == {"team_name": "search"}  # free-form keys keep their spelling
    assert body["tools"] == [{"googleSearch": {}}]  # lists replace
    assert "metadata" not in body and "generation_config" not in body


def test_other_providers_extras_do_not_break_a_fallback_to_gemini() -> None:
    request = ChatRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": 2048},  # meant for Claude
            "enable_thinking": True,  # meant for Qwen
            "top_k": 40,  # understood: Gemini's topK
        }
    )
    body = encode_request(request, GeminiSettings(model="gemini-2.5-flash", api_key=KEY))
    assert body == {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"topK": 40}}


# -- botched tool turns ----------------------------------------------------------------------------


def test_a_botched_empty_turn_raises_and_one_with_content_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    empty = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "bad call", "index": 0}]}
    with pytest.raises(TurnFailed, match=r"MALFORMED_FUNCTION_CALL.*bad call") as info:
        decode_response(empty, "m")
    assert info.value.reason == "MALFORMED_FUNCTION_CALL"
    with pytest.raises(TurnFailed):
        StreamState("m").chunk(empty)
    kept = {"candidates": [{"content": {"parts": [{"text": "Partial"}]}, "finishReason": "TOO_MANY_TOOL_CALLS"}]}
    assert decode_response(kept, "m").choices[0].finish_reason == "stop"
    assert "TOO_MANY_TOOL_CALLS after some output" in caplog.text
    state = StreamState("m")
    state.chunk({"candidates": [{"content": {"parts": [{"text": "Part"}]}}]})
    last = state.chunk({"candidates": [{"finishReason": "UNEXPECTED_TOOL_CALL"}]})
    assert last is not None and last.choices[0].finish_reason == "stop"


# -- model rules and families ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "dropped"),
    [
        ("gemini-2.5-flash", True),
        ("gemini-2.5-pro", True),
        ("gemini-3-flash-preview", True),
        ("gemini-3.1-pro-preview", True),
        ("gemini-3.8-flash", True),
        ("models/gemini-3.5-flash", True),
        ("gemini-flash-latest", True),
        ("gemini-2.0-flash", False),
    ],
)
def test_penalty_rules_by_model(model: str, dropped: bool) -> None:
    rules = tuple(r for r in GeminiProvider.model_rules if r.matches(model))
    request = ChatRequest(messages=[{"role": "user", "content": "x"}], presence_penalty=0.5, frequency_penalty=0.1)
    out = apply_model_rules(request, rules, "adapt", provider="gemini", deployment="d")
    assert (out.presence_penalty is None, out.frequency_penalty is None) == (dropped, dropped)
    assert request.presence_penalty == 0.5  # the caller's request is never changed
    assert all(r.source for r in MODEL_RULES)


@pytest.mark.parametrize(
    ("model", "levels", "budget"),
    [
        ("gemini-3-pro-preview", ("low", "high"), None),
        ("gemini-3.1-pro-preview", ("low", "medium", "high"), None),
        ("gemini-3-flash-preview", ("minimal", "low", "medium", "high"), None),
        ("gemini-3.1-flash-lite", ("minimal", "low", "medium", "high"), None),
        ("gemini-2.5-pro", (), (128, 32768, False)),
        ("gemini-2.5-flash", (), (1, 24576, True)),
        ("gemini-2.5-flash-lite", (), (512, 24576, True)),
    ],
)
def test_model_families(model: str, levels: tuple[str, ...], budget: tuple[int, int, bool] | None) -> None:
    family = family_of(model)
    assert family.levels == levels
    if budget is not None:
        assert (family.budget_min, family.budget_max, family.can_disable) == budget


# -- a long conversation ---------------------------------------------------------------------------


def conversation(n: int) -> list[dict[str, Any]]:
    """Alternating turns, tool stretches and same-role runs (merged into one content)."""
    messages: list[dict[str, Any]] = []
    i = 0
    while len(messages) < n:
        messages.append({"role": "user", "content": f"question {i}"})
        if i % 3 == 0:
            messages.append({"role": "user", "content": "and another thing"})
        call = f"call_{i:024x}"
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [{"id": call, "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call, "content": "ok"})
        messages.append({"role": "assistant", "content": f"answer {i}"})
        if i % 4 == 0:
            messages.append({"role": "assistant", "content": "one more remark"})
        i += 1
    return messages[:n]


def test_twenty_thousand_messages_encode_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural check (each message's parts are appended once, never copied again) plus a
    generous bound; timing ratios would be flaky on shared CPUs."""
    messages = conversation(20_000)
    request = ChatRequest(messages=messages)
    settings = GeminiSettings(model="gemini-3-flash-preview", api_key=KEY)
    import llm_factory_gemini._encode as encode_module

    calls = {"n": 0}
    original = encode_module._function_call_part

    def counted(*args: Any, **kw: Any) -> dict[str, Any]:
        calls["n"] += 1
        return original(*args, **kw)

    monkeypatch.setattr(encode_module, "_function_call_part", counted)
    started = time.perf_counter()
    body = encode_request(request, settings)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    parts = sum(len(c["parts"]) for c in body["contents"])
    assert parts == len(messages)  # one part per message: nothing duplicated or re-encoded
    assert calls["n"] == sum(1 for m in messages if m.get("tool_calls"))
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # runs merged, turns alternate
