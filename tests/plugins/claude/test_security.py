"""Issue 20 for Claude: request encoding linear in the conversation, error parsing that cannot
backtrack. Bounds are generous (a loaded CI machine passes them); the structural checks are what
fail on a quadratic implementation."""

from __future__ import annotations

import time
from typing import Any

import pytest

import llm_factory_claude._codec as codec
from llm_factory_claude._errors import classify_anthropic_payload, classify_bedrock_error
from llm_factory_core import BadRequestError, ChatRequest, ContextLengthError

from .fake_claude import Fail, FakeAnthropic
from .helpers import anthropic_config, bedrock_config, bedrock_fake, served

N = 20_000


def encode(messages: list[dict[str, Any]]) -> tuple[dict[str, Any], float]:
    request = ChatRequest.model_validate({"messages": messages})
    started = time.perf_counter()
    body = codec.encode_messages_request(request, allow_image_urls=False, model="claude-sonnet-4-5")
    return body, time.perf_counter() - started


@pytest.fixture
def orderings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many blocks each per-turn ordering pass looked at: linear means one pass per turn."""
    seen: list[int] = []
    original = codec._ordered

    def counting(role: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.append(len(blocks))
        return original(role, blocks)

    monkeypatch.setattr(codec, "_ordered", counting)
    return seen


def test_twenty_thousand_same_role_messages_encode_in_linear_time(orderings: list[int]) -> None:
    # Text and tool results interleaved in one long user run: the old encoder re-sorted the merged
    # turn on every message (20k messages froze the event loop for 9.6 s).
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                for i in range(N // 2)
            ],
        },
    ]
    for i in range(N):
        if i % 2:
            messages.append({"role": "tool", "tool_call_id": f"call_{i // 2}", "content": "ok"})
        else:
            messages.append({"role": "user", "content": f"note {i}"})
    body, elapsed = encode(messages)
    assert elapsed < 2.0, f"{N} same-role messages took {elapsed:.2f} s"
    turns = body["messages"]
    assert [t["role"] for t in turns] == ["assistant", "user"]
    user = turns[1]["content"]
    assert len(user) == N
    kinds = [b["type"] for b in user]
    assert kinds == ["tool_result"] * (N // 2) + ["text"] * (N // 2)  # results first, order kept
    assert user[0]["tool_use_id"] == "call_0" and user[N // 2]["text"] == "note 0"
    assert orderings == [N // 2, N], "each turn is ordered once, not once per merged message"


def test_twenty_thousand_alternating_messages_encode_in_linear_time(orderings: list[int]) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(N)]
    messages.append({"role": "user", "content": "last"})
    body, elapsed = encode(messages)
    assert elapsed < 2.0, f"{N} alternating messages took {elapsed:.2f} s"
    assert len(body["messages"]) == N + 1
    assert sum(orderings) == N + 1 and len(orderings) == N + 1


HOSTILE = [
    "exceeds " * 14_000,  # each "exceed " made the old pattern rescan the rest: 21 s for 100 KB
    "context " * 14_000,
    "too many input tokens in " * 5_000,
    "x" * 120_000,
]


@pytest.mark.parametrize("message", HOSTILE, ids=["exceeds", "context", "too-many", "plain"])
def test_context_length_detection_cannot_backtrack(message: str) -> None:
    assert len(message) > 100_000
    started = time.perf_counter()
    cls, _, _ = classify_bedrock_error(400, {"x-amzn-errortype": "ValidationException"}, message.encode())
    classify_anthropic_payload({"error": {"type": "invalid_request_error", "message": message}}, 400)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"classifying a {len(message)}-character error took {elapsed:.2f} s"
    assert cls is BadRequestError


@pytest.mark.parametrize(
    "message",
    [
        "Input is too long for requested model.",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 187254 + 20000 > 200000",
        "The model's context window was exceeded",
        "too many input tokens in the prompt",
    ],
)
def test_context_length_wording_is_still_recognised(message: str) -> None:
    assert classify_anthropic_payload({"error": {"type": "invalid_request_error", "message": message}}, 400)[0] is (
        ContextLengthError
    )


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["bedrock", "anthropic"])
async def test_a_hostile_error_body_is_classified_at_once(host: str, http_transport: str) -> None:
    fake: Any = bedrock_fake() if host == "bedrock" else FakeAnthropic()
    code = "ValidationException" if host == "bedrock" else "invalid_request_error"
    fake.script.append(Fail(code, "exceeds " * 14_000))
    config = bedrock_config() if host == "bedrock" else anthropic_config()
    async with served(fake, [config], http_transport) as f:
        started = time.perf_counter()
        with pytest.raises(BadRequestError) as info:
            await f.chat_async("Hi")
        elapsed = time.perf_counter() - started
    assert not isinstance(info.value, ContextLengthError)
    assert elapsed < 2.0
