"""The five providers' strict fakes, as the cross-provider matrix (test_cross_provider_matrix.py)
uses them: each served once on 127.0.0.1 behind a handler whose fake is replaced per test, scripted
to answer a tool call, then text (or an upstream failure), with a thinking-capable current model,
and each able to say whether a request it accepted carried the reasoning state that provider needs.

The fakes themselves (tests/plugins/<provider>/fake_*.py) enforce today's rules and answer 400 to
what the real API rejects; the checks here add what a 200 alone cannot show (that a Claude turn
kept its signed blocks byte for byte, that Gemini got its own signature back rather than the skip
value, that DeepSeek got its own reasoning back).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

from llm_factory_core import ChatCompletionChunk, ModelConfig
from llm_factory_core.testing import serve_handler
from tests.plugins.claude.fake_claude import Fail, FakeBedrock, sign_thinking
from tests.plugins.claude.fake_claude import Reply as ClaudeReply
from tests.plugins.deepseek.fake_deepseek import FakeDeepSeek
from tests.plugins.deepseek.fake_deepseek import Reply as DeepSeekReply
from tests.plugins.gemini.fake_gemini import VALID_KEY as GEMINI_KEY
from tests.plugins.gemini.fake_gemini import FakeGemini, GeminiError, Turn
from tests.plugins.gemini.fake_rules import SKIP_SIGNATURE
from tests.plugins.openai.fake_openai import FakeOpenAI
from tests.plugins.qwen.fake_dashscope import ERRORS as QWEN_ERRORS
from tests.plugins.qwen.fake_dashscope import KEY as QWEN_KEY
from tests.plugins.qwen.fake_dashscope import FakeDashScope
from tests.plugins.qwen.fake_dashscope import Turn as QwenTurn

__all__ = [
    "PROVIDERS",
    "WEATHER",
    "Upstream",
    "assemble",
    "drops_unknown_fields",
    "served_upstreams",
]

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ARGUMENTS = {"city": "Paris"}
PARALLEL = ({"city": "Paris"}, {"city": "Rome"})
"""The arguments of a parallel tool-call turn (``script_parallel_calls``)."""


class Upstream:
    """One provider: its fake (fresh per test), how a deployment reaches it, how to script it and
    what its next request must carry."""

    name: ClassVar[str]
    model: ClassVar[str]
    """A current thinking-capable model id of this provider."""

    def __init__(self) -> None:
        self.fake: Any = None
        self.base = ""
        self.call_id = ""
        self.received = 0
        """Requests this test's fake received (answered or refused)."""
        self.reset()

    # -- per test --------------------------------------------------------------------------------

    def reset(self) -> None:
        """A fresh fake, and a tool-call id unique to this test (the reasoning memory is per
        process: an id seen in another test must not answer for this one)."""
        self.fake = self.new_fake()
        self.call_id = self.new_call_id()
        self.received = 0

    def new_fake(self) -> Any:
        raise NotImplementedError

    def new_call_id(self) -> str:
        return "call_" + uuid.uuid4().hex[:24]

    def handle(self, request: httpx.Request) -> Any:
        """The served handler: the current test's fake answers."""
        self.received += 1
        return self.answer(request)

    def answer(self, request: httpx.Request) -> Any:
        return self.fake(request)

    def config(self, model_name: str) -> ModelConfig:
        raise NotImplementedError

    # -- scripting -------------------------------------------------------------------------------

    def script_tool_call(self) -> None:
        """The next request is answered with one get_weather call (and this provider's reasoning)."""
        raise NotImplementedError

    def script_parallel_calls(self) -> None:
        """The next request is answered with two get_weather calls (``PARALLEL``), fresh ids."""
        raise NotImplementedError

    def script_text(self, text: str) -> None:
        raise NotImplementedError

    def script_failure(self) -> None:
        """The next request fails as this provider fails when it is overloaded (a 5xx)."""
        raise NotImplementedError

    # -- what the fake saw -----------------------------------------------------------------------

    def bodies(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check_first_reply(self, message: dict[str, Any]) -> None:
        """The assistant message a client assembled from this provider's tool-call reply carries
        this provider's reasoning state in the OpenAI shape."""
        (call,) = message["tool_calls"]
        assert len(call["id"]) <= 40
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == ARGUMENTS

    def check_own_first_turn(self, body: dict[str, Any]) -> None:
        """In a request this provider accepted, its own first tool-call turn came back with its
        reasoning state (a provider without any has nothing to check)."""

    def check_continuation(self, body: dict[str, Any], origin: Upstream, keeps: bool) -> None:
        """The accepted request continuing a tool loop begun on ``origin`` carries what this
        provider needs (the fake already refused anything its API refuses)."""
        raise NotImplementedError


def _openai_history_ids(messages: list[dict[str, Any]]) -> tuple[str, str]:
    (assistant,) = [m for m in messages if m.get("tool_calls")]
    (tool,) = [m for m in messages if m["role"] == "tool"]
    (call,) = assistant["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == ARGUMENTS
    return call["id"], tool["tool_call_id"]


class OpenAIUpstream(Upstream):
    name = "openai"
    model = "gpt-5.1"

    def new_fake(self) -> FakeOpenAI:
        return FakeOpenAI(model=self.model)  # strict_messages: unknown message fields are a 400

    def config(self, model_name: str) -> ModelConfig:
        return ModelConfig(
            provider="openai", model_name=model_name, model=self.model, api_key="sk-openai-matrix-0001",
            api_base=self.base + "/v1",
        )  # fmt: skip

    def script_tool_call(self) -> None:
        self.fake.push("tools", calls=[{"id": self.call_id, "name": "get_weather", "arguments": json.dumps(ARGUMENTS)}])

    def script_parallel_calls(self) -> None:
        calls = [{"id": self.new_call_id(), "name": "get_weather", "arguments": json.dumps(a)} for a in PARALLEL]
        self.fake.push("tools", calls=calls)

    def script_text(self, text: str) -> None:
        self.fake.push("text", text=text)

    def script_failure(self) -> None:
        self.fake.push("server_error")  # OpenAI's 500 "The server had an error ..."

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.fake.requests]

    def check_continuation(self, body: dict[str, Any], origin: Upstream, keeps: bool) -> None:
        call_id, answered = _openai_history_ids(body["messages"])
        assert call_id == answered and len(call_id) <= 40
        if origin.name == "openai":
            assert call_id == self.call_id
        assert "max_tokens" not in body and body["reasoning_effort"] == "medium"


class DeepSeekUpstream(Upstream):
    name = "deepseek"
    model = "deepseek-v4-pro"
    key = "sk-deepseek-matrix-key-0001"
    reasoning = "The user wants the weather in Paris: call get_weather."

    def new_fake(self) -> FakeDeepSeek:
        return FakeDeepSeek(keys=(self.key,))

    def new_call_id(self) -> str:
        return "call_00_" + uuid.uuid4().hex[:20]

    def config(self, model_name: str) -> ModelConfig:
        return ModelConfig(
            provider="deepseek", model_name=model_name, model=self.model, api_key=self.key, api_base=self.base
        )

    def script_tool_call(self) -> None:
        call = {"id": self.call_id, "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(ARGUMENTS)}}  # fmt: skip
        self.fake.add(text="", reasoning=self.reasoning, tool_calls=[call], finish_reason="tool_calls")

    def script_parallel_calls(self) -> None:
        calls = [
            {
                "id": self.new_call_id(),
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(a)},
            }
            for a in PARALLEL
        ]
        self.fake.add(text="", reasoning=self.reasoning, tool_calls=calls, finish_reason="tool_calls")

    def script_text(self, text: str) -> None:
        self.fake.add(DeepSeekReply(text=text))

    def script_failure(self) -> None:
        self.fake.add(error="busy")  # 503 "Server overloaded, please try again later."

    def bodies(self) -> list[dict[str, Any]]:
        return list(self.fake.bodies())

    def check_first_reply(self, message: dict[str, Any]) -> None:
        super().check_first_reply(message)
        assert message["reasoning_content"] == self.reasoning

    def check_own_first_turn(self, body: dict[str, Any]) -> None:
        first = next(m for m in body["messages"] if m["role"] == "assistant")
        assert first["reasoning_content"] == self.reasoning

    def check_continuation(self, body: dict[str, Any], origin: Upstream, keeps: bool) -> None:
        call_id, answered = _openai_history_ids(body["messages"])
        assert call_id == answered
        (assistant,) = [m for m in body["messages"] if m["role"] == "assistant"]
        # Still thinking (not switched off to dodge the rule) ...
        assert (body.get("thinking") or {}).get("type") != "disabled"
        # ... so the tool stretch must carry reasoning_content (the fake's 400 otherwise).
        assert isinstance(assistant.get("reasoning_content"), str)
        if origin.name == "deepseek":
            # Its own reasoning comes back, from the message or (client dropped it) from memory.
            assert assistant["reasoning_content"] == self.reasoning
        for foreign in ("thinking_blocks", "extra_content"):
            assert foreign not in assistant and foreign not in assistant["tool_calls"][0]


class ClaudeUpstream(Upstream):
    """Claude on Bedrock with SigV4 access keys and a cross-region inference profile id (its ``:``
    must stay ``%3A`` in the signed path on both transports)."""

    name = "claude"
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    access_key, secret = "AKIDMATRIXKEY0001", "bedrock-matrix-secret-0001"
    redacted = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB4URj"

    def new_fake(self) -> FakeBedrock:
        return FakeBedrock(region="us-east-1", credentials={self.access_key: (self.secret, None)})

    def new_call_id(self) -> str:
        return "toolu_01" + uuid.uuid4().hex[:22]

    def answer(self, request: httpx.Request) -> Any:
        return self.fake.handle(request)

    def config(self, model_name: str) -> ModelConfig:
        return ModelConfig.model_validate(
            {"provider": "claude", "model_name": model_name, "model": self.model, "aws_region": "us-east-1",
             "aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret, "api_base": self.base}
        )  # fmt: skip

    @property
    def thinking(self) -> str:
        return f"The user wants Paris weather ({self.call_id[-6:]}); I should call the tool."

    def blocks(self) -> list[dict[str, Any]]:
        """The signed blocks of the tool-call turn (signatures the fake verifies)."""
        return [
            {"type": "thinking", "thinking": self.thinking, "signature": sign_thinking(self.thinking)},
            {"type": "redacted_thinking", "data": self.redacted},
        ]

    def script_tool_call(self) -> None:
        self.fake.script.append(
            ClaudeReply(
                blocks=[
                    *self.blocks(),
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": self.call_id, "name": "get_weather", "input": ARGUMENTS},
                ],
                stop_reason="tool_use",
            )
        )

    def script_parallel_calls(self) -> None:
        uses = [{"type": "tool_use", "id": self.new_call_id(), "name": "get_weather", "input": a} for a in PARALLEL]
        self.fake.script.append(ClaudeReply(blocks=[*self.blocks(), *uses], stop_reason="tool_use"))

    def script_text(self, text: str) -> None:
        self.fake.script.append(ClaudeReply.text(text))

    def script_failure(self) -> None:
        # Bedrock's 503 (botocore's bedrock-runtime service model lists it for InvokeModel).
        self.fake.script.append(Fail("ServiceUnavailableException", "Bedrock is unable to process your request."))

    def bodies(self) -> list[dict[str, Any]]:
        return list(self.fake.bodies)

    def check_first_reply(self, message: dict[str, Any]) -> None:
        super().check_first_reply(message)
        # A stream's blocks keep the ``index`` they were accumulated by (Claude's encoder drops it).
        blocks = [{k: v for k, v in b.items() if k != "index"} for b in message["thinking_blocks"]]
        assert blocks == self.blocks()
        assert message["reasoning_content"] == self.thinking
        assert message["tool_calls"][0]["id"] == self.call_id
        assert self.bodies()[-1]["thinking"]["type"] == "enabled"  # reasoning_effort turned it on

    def check_own_first_turn(self, body: dict[str, Any]) -> None:
        first = next(m for m in body["messages"] if m["role"] == "assistant")
        if body.get("thinking"):  # with thinking off (a foreign last turn) Claude may drop them
            assert first["content"][:2] == self.blocks()

    def check_continuation(self, body: dict[str, Any], origin: Upstream, keeps: bool) -> None:
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["user", "assistant", "user"]
        assistant = body["messages"][1]["content"]
        uses = [b for b in assistant if b["type"] == "tool_use"]
        (result,) = body["messages"][2]["content"]
        assert [u["input"] for u in uses] == [ARGUMENTS] and result["tool_use_id"] == uses[0]["id"]
        if origin.name == "claude":
            # Rebuilt unchanged, in order, at the head of the turn, with thinking still on.
            assert assistant[:2] == self.blocks()
            assert body["thinking"]["type"] == "enabled"
        else:
            # No Claude blocks exist for a foreign turn: no invented ones (the fake verifies any).
            assert all(b["type"] not in ("thinking", "redacted_thinking") for b in assistant)


class GeminiUpstream(Upstream):
    name = "gemini"
    model = "gemini-3-flash-preview"

    def new_fake(self) -> FakeGemini:
        return FakeGemini()

    def config(self, model_name: str) -> ModelConfig:
        return ModelConfig(
            provider="gemini", model_name=model_name, model=self.model, api_key=GEMINI_KEY, api_base=self.base
        )

    def script_tool_call(self) -> None:
        self.fake.add(Turn(thoughts="The user wants Paris weather.", calls=[("get_weather", ARGUMENTS)]))

    def script_parallel_calls(self) -> None:
        self.fake.add(Turn(thoughts="Both cities.", calls=[("get_weather", dict(a)) for a in PARALLEL]))

    def script_text(self, text: str) -> None:
        self.fake.add(Turn(text=text))

    def script_failure(self) -> None:
        self.fake.add(GeminiError.unavailable())  # 503 UNAVAILABLE "The model is overloaded."

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.fake.requests]

    def check_first_reply(self, message: dict[str, Any]) -> None:
        super().check_first_reply(message)
        (call,) = message["tool_calls"]
        issued = self.fake.issued_signatures["get_weather"]
        assert call["extra_content"] == {"google": {"thought_signature": issued}}
        assert "~ts~" not in call["id"]

    def check_own_first_turn(self, body: dict[str, Any]) -> None:
        first = next(c for c in body["contents"] if c["role"] == "model")
        calls = [p for p in first["parts"] if "functionCall" in p]
        # Its own signature (not the skip value) on the step's first call only.
        assert calls[0]["thoughtSignature"] in self.fake.all_signatures
        assert all("thoughtSignature" not in p for p in calls[1:])

    def check_continuation(self, body: dict[str, Any], origin: Upstream, keeps: bool) -> None:
        contents = body["contents"]
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        (part,) = [p for p in contents[1]["parts"] if "functionCall" in p]
        assert part["functionCall"]["name"] == "get_weather" and part["functionCall"]["args"] == ARGUMENTS
        (response,) = contents[2]["parts"]
        assert response["functionResponse"]["name"] == "get_weather"
        if origin.name == "gemini":
            assert part["thoughtSignature"] == self.fake.issued_signatures["get_weather"]
        else:
            assert part["thoughtSignature"] == SKIP_SIGNATURE


class QwenUpstream(Upstream):
    name = "qwen"
    model = "qwen3-235b-a22b"
    """Thinks by default and refuses a non-streaming call while thinking: the plugin streams."""

    def new_fake(self) -> FakeDashScope:
        return FakeDashScope()

    def answer(self, request: httpx.Request) -> Any:
        return self.fake._mock_handler(request)

    def config(self, model_name: str) -> ModelConfig:
        return ModelConfig(
            provider="qwen", model_name=model_name, model=self.model, api_key=QWEN_KEY, api_base=self.base + "/api/v1"
        )

    def script_tool_call(self) -> None:
        call = {"id": self.call_id, "name": "get_weather", "arguments": json.dumps(ARGUMENTS)}
        self.fake.queue(QwenTurn(pieces=[], reasoning=["Paris weather: ", "call the tool."], tool_calls=[call]))

    def script_parallel_calls(self) -> None:
        calls = [{"id": self.new_call_id(), "name": "get_weather", "arguments": json.dumps(a)} for a in PARALLEL]
        self.fake.queue(QwenTurn(pieces=[], reasoning=["Both cities."], tool_calls=calls))

    def script_text(self, text: str) -> None:
        self.fake.queue(QwenTurn(pieces=[text], reasoning=["Answer from the result."]))

    def script_failure(self) -> None:
        self.fake.queue(QwenTurn(error=QWEN_ERRORS["unavailable"]))  # 503 ServiceUnavailable

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.fake.requests]

    def check_first_reply(self, message: dict[str, Any]) -> None:
        super().check_first_reply(message)
        assert message["tool_calls"][0]["id"] == self.call_id
        assert message["reasoning_content"] == "Paris weather: call the tool."

    def check_continuation(self, body: dict[str, Any], origin: Upstream, keeps: bool) -> None:
        assert body["parameters"]["enable_thinking"] is True  # reasoning_effort kept thinking on
        messages = body["input"]["messages"]
        call_id, answered = _openai_history_ids(messages)
        assert call_id == answered
        (assistant,) = [m for m in messages if m["role"] == "assistant"]
        # DashScope ignores fields it does not know (the fake too), so only this catches other
        # providers' reasoning state being forwarded (conventions: each encoder drops it).
        assert "thinking_blocks" not in assistant and "extra_content" not in assistant["tool_calls"][0]
        if origin.name == "qwen" and keeps:
            assert assistant["reasoning_content"] == "Paris weather: call the tool."


UPSTREAMS: tuple[type[Upstream], ...] = (OpenAIUpstream, DeepSeekUpstream, ClaudeUpstream, GeminiUpstream, QwenUpstream)
PROVIDERS: tuple[str, ...] = tuple(u.name for u in UPSTREAMS)


@contextlib.contextmanager
def served_upstreams() -> Iterator[dict[str, Upstream]]:
    """Every provider's fake on its own 127.0.0.1 port (served once; ``reset`` per test)."""
    with contextlib.ExitStack() as stack:
        upstreams: dict[str, Upstream] = {}
        for kind in UPSTREAMS:
            upstream = kind()
            handler: Callable[[httpx.Request], Any] = upstream.handle
            upstream.base = stack.enter_context(serve_handler(handler))
            upstreams[upstream.name] = upstream
        yield upstreams


def assemble(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """The assistant message an OpenAI client builds from stream deltas: what the openai SDK's
    stream helpers (``client.chat.completions.stream``) accumulate, as the SDK's own
    ``ChatCompletionStreamState`` does it (strings appended, list entries merged by ``index``,
    other fields kept: ``reasoning_content``, ``thinking_blocks``, a tool call's
    ``extra_content``), dumped as a client sends it back."""
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(OpenAIChunk.model_validate(chunk.model_dump(exclude_none=True)))
    message: dict[str, Any] = state.current_completion_snapshot.choices[0].message.model_dump(exclude_none=True)
    return message


def drops_unknown_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant message as LangChain and agent SDKs send it back: OpenAI's own fields only."""
    return {
        "role": "assistant",
        "content": message.get("content"),
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
            }
            for c in message["tool_calls"]
        ],
    }
