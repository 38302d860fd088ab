"""A faithful fake of DeepSeek's chat completions API (reference §4) as an httpx handler.

What it reproduces: ``POST /chat/completions`` (and ``/v1/...``, ``/beta/...``) with Bearer auth;
OpenAI-shaped replies with a bare-UUID id, ``system_fingerprint`` and DeepSeek's usage
(``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens``, ``reasoning_tokens``);
``reasoning_content`` in messages and stream deltas (the reasoner's first delta carries
``reasoning_content: ""``); usage on the finish chunk; ``data: [DONE]``; keep-alive blank lines
before a non-stream body and ``: keep-alive`` comments in streams (optionally timed); its error
bodies (400/401/402/422/429/500/503); ``finish_reason: insufficient_system_resource``; and the
documented input checks (unknown model, logprobs in thinking mode, the reasoning_content round-trip
rules of the legacy reasoner and of thinking mode, the thinking toggle and reasoning_effort values,
content-part types, chat prefix completion on the beta base); ``max_tokens`` (the only output cap
DeepSeek documents) cuts the reply with ``finish_reason: length``; a stream can be cut mid-way.

Models (api-docs.deepseek.com/quick_start/pricing, checked 2026-12): ``deepseek-flash``
(DeepSeek-V4.1-Flash) and ``deepseek-v4-pro``, thinking by default; ``deepseek-v4-flash`` is an old
name still served (by V4.1 Flash); ``deepseek-chat`` / ``deepseek-reasoner`` are the legacy aliases
of V4 Flash's non-thinking / thinking modes (announced to retire after 2026-07-24; kept so configs
that still name them are covered).

``FakeDeepSeek`` is an httpx handler: ``llm_factory_core.testing.serve_handler(fake)`` serves it on
127.0.0.1 (the plugin's tests, on both HTTP transports, and the ``openai`` SDK checks), and
``fake.transport`` wraps it in ``httpx.MockTransport`` for the SDK request comparison and the
conformance kit. Timed streams (``keepalive_interval`` / ``stall``) need an async reader.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx

__all__ = ["ERRORS", "FakeDeepSeek", "Reply", "error_body"]

FINGERPRINT = "fp_ffc7281d48_prod0820_fp8_kvcache"
MODELS: dict[str, bool] = {
    "deepseek-flash": True,
    "deepseek-v4-pro": True,
    "deepseek-v4-flash": True,
    "deepseek-chat": False,
    "deepseek-reasoner": True,
}
"""Model id -> whether it thinks by default. "Thinking mode is enabled by default"
(api-docs.deepseek.com/guides/thinking_mode, note 1); ``deepseek-chat`` is the non-thinking alias
(pricing page, note 1)."""
ROUND_TRIP_MESSAGE = "The `reasoning_content` in the thinking mode must be passed back to the API."
"""DeepSeek's 400 for a tool stretch without reasoning, as reported for V4 (openai/openai-agents-python
#2155, anomalyco/opencode#24083, MGdaasLab/WHartTest#95, deepseek-ai/deepseek-harness#739)."""
REASONING_EFFORTS = frozenset({"minimal", "low", "medium", "high", "xhigh", "max", "ultra"})
"""The efforts DeepSeek maps (thinking_mode guide, "Thinking Effort Control" table). ``none`` is
only the Responses API's switch-off, not a Chat Completions value."""
PART_TYPES = frozenset({"text", "image_url"})
PATHS = {"/chat/completions": False, "/v1/chat/completions": False, "/beta/chat/completions": True}
"""Path -> whether it is the beta base (chat prefix completion needs it)."""

# status, message, type (bodies as observed; ``type`` strings for 422/429/5xx are uncertain).
ERRORS: dict[str, tuple[int, str, str]] = {
    "bad_request": (400, "Invalid request: messages must not be empty", "invalid_request_error"),
    "auth": (401, "Authentication Fails, Your api key: ****{tail} is invalid", "authentication_error"),
    "balance": (402, "Insufficient Balance", "unknown_error"),
    "context": (
        400,
        "This model's maximum context length is 1048576 tokens. However, you requested 1050000 tokens "
        "(1050000 in the messages, 0 in the completion). Please reduce the length of the messages or completion.",
        "invalid_request_error",
    ),
    "invalid": (422, "Invalid parameter: temperature must be <= 2", "invalid_request_error"),
    "rate_limit": (429, "Rate Limit Reached", "rate_limit_reached_error"),
    "server": (500, "Server Error", "server_error"),
    "busy": (503, "Server overloaded, please try again later.", "server_overloaded_error"),
}


def error_body(message: str, err_type: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": None, "code": "invalid_request_error"}}


@dataclass
class Reply:
    """One scripted reply. ``error`` names an entry of ERRORS (the reply is then that error)."""

    text: str = "Hello from DeepSeek"
    reasoning: str | None = None
    """Chain of thought; defaults to a short one for thinking-mode requests."""
    pieces: list[str] | None = None
    """How ``text`` is split into stream deltas (default: words)."""
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str = "stop"
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    keepalives: int = 0
    """Blank lines before a non-stream body / ``: keep-alive`` comments before a stream."""
    keepalive_interval: float = 0.0
    """Seconds between keep-alive comments (needs the async client)."""
    stall: tuple[int, float] | None = None
    """(n, seconds): true silence before stream event n (0 = before the first chunk)."""
    cut_after: int | None = None
    """A stream that stops (the connection closes) after this many events: no finish, no [DONE]."""
    cache_hit: int = 0


class FakeDeepSeek:
    def __init__(
        self,
        keys: tuple[str, ...] = ("sk-deepseek-test-key-0001",),
        *,
        broke: tuple[str, ...] = (),
        legacy_reasoner: bool = False,
    ) -> None:
        self.keys = set(keys) | set(broke)
        self.broke = set(broke)
        """Keys with no balance left (402)."""
        self.legacy_reasoner = legacy_reasoner
        """The original deepseek-reasoner: any reasoning_content in the input is a 400."""
        self.requests: list[httpx.Request] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.transport = httpx.MockTransport(self)

    def add(self, reply: Reply | None = None, *, times: int = 1, **kw: Any) -> FakeDeepSeek:
        for _ in range(times):
            self.script.append(reply or Reply(**kw))
        return self

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]

    # -- the handler ---------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if request.method != "POST" or request.url.path not in PATHS:
            return self._error(404, "Not Found", "invalid_request_error")
        auth = request.headers.get("authorization", "")
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if key not in self.keys:
            return self._error(*_fmt(ERRORS["auth"], key[-4:]))
        if key in self.broke:
            return self._error(*ERRORS["balance"])
        try:
            body = json.loads(request.content)
        except ValueError:
            return self._error(400, "Failed to deserialize the JSON body into the target type", "invalid_request_error")
        if problem := self._check(body, beta=PATHS[request.url.path]):
            return self._error(400, problem, "invalid_request_error")
        reply = self.script.popleft() if self.script else self.default
        if reply.error:
            status, message, err_type = _fmt(ERRORS[reply.error], key[-4:])
            return self._error(status, message, err_type, reply.headers)
        thinking = _thinking(body)
        reasoning = reply.reasoning if reply.reasoning is not None else ("Let me think." if thinking else None)
        reply = _capped(reply, body.get("max_tokens"))
        if body.get("stream"):
            return self._stream(body, reply, reasoning)
        return self._completion(body, reply, reasoning)

    def _check(self, body: Any, *, beta: bool = False) -> str | None:
        """DeepSeek's documented input checks (400s)."""
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return "Failed to deserialize the JSON body into the target type: missing field `model`"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return "Failed to deserialize the JSON body into the target type: missing field `messages`"
        if body["model"] not in MODELS:
            return "Model Not Exist"
        if problem := _check_controls(body):
            return problem
        if problem := _check_parts(messages):
            return problem
        if problem := _check_prefix(messages, beta):
            return problem
        thinking = _thinking(body)
        if thinking and (body.get("logprobs") or body.get("top_logprobs") is not None):
            return "logprobs is not supported in thinking mode"
        with_reasoning = [m for m in messages if "reasoning_content" in m]
        if self.legacy_reasoner and body["model"] == "deepseek-reasoner" and with_reasoning:
            return "reasoning_content is not allowed in the input messages"
        if thinking and not self.legacy_reasoner:
            return _check_tool_stretches(messages)
        return None

    # -- replies --------------------------------------------------------------------------------

    def _usage(self, body: dict[str, Any], reply: Reply, reasoning: str | None) -> dict[str, Any]:
        prompt = max(1, sum(len(str(m.get("content") or "").split()) + 4 for m in body["messages"]))
        hit = min(reply.cache_hit, prompt)
        reasoning_tokens = len(reasoning.split()) if reasoning else 0
        completion = len(reply.text.split()) + reasoning_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": hit},
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": prompt - hit,
        }
        if reasoning is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        return usage

    def _completion(self, body: dict[str, Any], reply: Reply, reasoning: str | None) -> httpx.Response:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        data = {
            "id": str(uuid.uuid4()),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": self._usage(body, reply, reasoning),
            "system_fingerprint": FINGERPRINT,
        }
        content = b"\n" * reply.keepalives + json.dumps(data, ensure_ascii=False).encode()
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})

    def _events(self, body: dict[str, Any], reply: Reply, reasoning: str | None) -> list[dict[str, Any]]:
        base = {
            "id": str(uuid.uuid4()),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice], **extra}

        thinking = reasoning is not None
        first: dict[str, Any] = {"role": "assistant", "content": None if thinking else ""}
        if thinking:
            first["reasoning_content"] = ""
        events = [chunk(first)]
        if reasoning:
            events += [chunk({"content": None, "reasoning_content": p}) for p in _split(reasoning)]
        pieces = reply.pieces if reply.pieces is not None else _split(reply.text)
        rc: dict[str, Any] = {"reasoning_content": None} if thinking else {}
        events += [chunk({"content": p, **rc}) for p in pieces]
        for i, call in enumerate(reply.tool_calls or []):
            events.append(chunk({"tool_calls": [{"index": i, **call}]}))
        events.append(chunk({"content": "", **rc}, reply.finish_reason, usage=self._usage(body, reply, reasoning)))
        return events

    def _stream(self, body: dict[str, Any], reply: Reply, reasoning: str | None) -> httpx.Response:
        events = [
            f"data: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in self._events(body, reply, reasoning)
        ]
        events.append(b"data: [DONE]\n\n")
        keepalive = b": keep-alive\n\n"
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        if reply.cut_after is not None:
            events = events[: reply.cut_after]
        if not reply.keepalive_interval and reply.stall is None:
            return httpx.Response(200, content=keepalive * reply.keepalives + b"".join(events), headers=headers)

        async def timed() -> AsyncIterator[bytes]:
            for _ in range(reply.keepalives):
                await anyio.sleep(reply.keepalive_interval)
                yield keepalive
            for i, event in enumerate(events):
                if reply.stall is not None and reply.stall[0] == i:
                    await anyio.sleep(reply.stall[1])
                yield event

        return httpx.Response(200, content=timed(), headers=headers)

    def _error(self, status: int, message: str, err_type: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(
            status,
            content=json.dumps(error_body(message, err_type)).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )


def _fmt(entry: tuple[int, str, str], tail: str) -> tuple[int, str, str]:
    status, message, err_type = entry
    return status, message.replace("{tail}", tail), err_type


def _thinking(body: dict[str, Any]) -> bool:
    """``thinking.type`` wins; else the model's default (thinking_mode guide: on by default)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        return bool(thinking["type"] == "enabled")
    return MODELS.get(body.get("model"), True)  # type: ignore[arg-type]


def _check_controls(body: dict[str, Any]) -> str | None:
    """The thinking toggle is ``{"type": "enabled"|"disabled"}`` and ``reasoning_effort`` one of
    the mapped efforts (thinking_mode guide, "Thinking Mode Toggle and Effort Control"). The
    wording of these two 400s is serde's (the ``Failed to deserialize`` family DeepSeek answers
    with, e.g. tailcallhq/forgecode#2008); the exact text was not observed."""
    thinking = body.get("thinking")
    if thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled")):
        return (
            "Failed to deserialize the JSON body into the target type: thinking.type: unknown variant, "
            "expected `enabled` or `disabled`"
        )
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        return (
            f"Failed to deserialize the JSON body into the target type: reasoning_effort: unknown variant "
            f"`{effort}`, expected one of {', '.join(sorted(REASONING_EFFORTS))}"
        )
    return None


def _check_parts(messages: list[dict[str, Any]]) -> str | None:
    """Content parts are ``text`` or ``image_url``: another type is a 400 ("messages[4].content:
    unknown variant `tool_reference`, expected `text`", zhukunpenglinyutong/jetbrains-cc-gui#591)."""
    for i, message in enumerate(messages):
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES:
                return (
                    f"Failed to deserialize the JSON body into the target type: messages[{i}].content: "
                    f"unknown variant `{kind}`, expected `text` or `image_url`"
                )
    return None


def _check_prefix(messages: list[dict[str, Any]], beta: bool) -> str | None:
    """Chat prefix completion: ``prefix: true`` only on the last message, an assistant one, and
    only on the beta base ``https://api.deepseek.com/beta`` (guides/chat_prefix_completion,
    "Notice" 1 and 2; the wording of the 400 was not observed)."""
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not message.get("prefix"):
            continue
        if i != last or message.get("role") != "assistant":
            return "prefix can only be set on the last message, which must be an assistant message"
        if not beta:
            return "prefix completion is a beta feature: set base_url to https://api.deepseek.com/beta"
    return None


def _check_tool_stretches(messages: list[dict[str, Any]]) -> str | None:
    """Thinking mode: between two user messages, if the model called tools, every assistant
    message of that stretch carries ``reasoning_content`` (thinking_mode guide: "must be passed
    back to the API in all subsequent user turns"). Missing or ``null`` is the 400; an empty
    string is accepted, as reported by deepseek-ai/deepseek-harness discussions #739/#1850 (the
    400 came from omitting the field for an empty reasoning; the official adapter sending it does
    not trigger it), anomalyco/opencode PR #24150 and sluisr/deepseek-cli v1.1.1 (community
    observations, not documented). A final prefix message is the reply being written: exempt."""
    stretch: list[dict[str, Any]] = []
    called = False
    for i, m in enumerate([*messages, {"role": "user"}]):
        role = m.get("role")
        if role == "user":
            if called and any(not isinstance(a.get("reasoning_content"), str) for a in stretch):
                return ROUND_TRIP_MESSAGE
            stretch, called = [], False
        elif role == "assistant":
            if not (m.get("prefix") and i == len(messages) - 1):
                stretch.append(m)
            called = called or bool(m.get("tool_calls"))
        elif role == "tool":
            called = True
    return None


def _capped(reply: Reply, max_tokens: Any) -> Reply:
    """``max_tokens`` caps the output (one word = one token here): the reply is cut and ends with
    ``length``. ``max_completion_tokens`` is not a DeepSeek parameter and is ignored."""
    words = reply.text.split(" ")
    if not isinstance(max_tokens, int) or len(words) <= max_tokens:
        return reply
    text = " ".join(words[:max_tokens])
    return replace(reply, text=text, pieces=None, finish_reason="length")


def _split(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]
