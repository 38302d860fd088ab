"""A faithful local fake of DashScope: the native API (text- and multimodal-generation) and the
OpenAI-compatible mode. Usable as an ``httpx.MockTransport`` (``fake.transport``,
``fake.respond(request, turn)``) and as a real server on 127.0.0.1 (``with fake.serve() as url``)
for the official ``dashscope`` SDK, which talks through ``requests`` / ``aiohttp``.

Native framing as captured from the real service (wire-formats reference §3): ``id:n`` /
``event:result`` / ``:HTTP_STATUS/200`` / ``data:{...}`` events, ``finish_reason`` the string
``"null"`` until the end, cumulative usage, no ``[DONE]``; errors as ``{"code", "message",
"request_id"}`` bodies or as ``event:error`` inside a 200 stream; without ``incremental_output:
true`` a stream repeats the whole text so far; without ``result_format: message`` the legacy
``output.text`` shape.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm_factory_core.testing import serve_handler

from .fake_embeddings import COMPAT_EMBEDDINGS_PATH, NATIVE_EMBEDDINGS_PATH, compat_embeddings, native_embeddings

TEXT_PATH = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
COMPAT_PATH = "/compatible-mode/v1/chat/completions"
KEY = "sk-fake-qwen-0123456789abcdef"


@dataclass
class FakeError:
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


# DashScope's native codes (docs "Status codes" + captures) with their compatible-mode equivalents.
ERRORS: dict[str, FakeError] = {
    "rate_limit": FakeError(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    "burst": FakeError(429, "Throttling.BurstRate", "Request rate increased too quickly."),
    "quota": FakeError(
        429, "Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit."
    ),
    "arrearage": FakeError(400, "Arrearage", "Access denied, please make sure your account is in good standing."),
    "auth": FakeError(401, "InvalidApiKey", "Invalid API-key provided."),
    "access": FakeError(403, "AccessDenied.Unpurchased", "Access to model denied."),
    "content_filter": FakeError(400, "DataInspectionFailed", "Input data may contain inappropriate content."),
    "bad_request": FakeError(
        400, "InvalidParameter", "Role must be user or assistant and Content length must be greater than 0"
    ),
    "context": FakeError(400, "InvalidParameter", "Range of input length should be [1, 30720]"),
    "server": FakeError(500, "InternalError", "An internal error has occured, please try again later."),
    "unavailable": FakeError(503, "ServiceUnavailable", "Service temporarily unavailable."),
}
_COMPAT_CODES = {
    "Throttling.RateQuota": ("limit_requests", "limit_requests"),
    "Throttling.BurstRate": ("limit_burst_rate", "limit_burst_rate"),
    "Throttling.AllocationQuota": ("insufficient_quota", "insufficient_quota"),
    "Arrearage": ("Arrearage", "Arrearage"),
    "InvalidApiKey": ("invalid_api_key", "invalid_request_error"),
    "DataInspectionFailed": ("DataInspectionFailed", "DataInspectionFailed"),
    "InvalidParameter": ("invalid_parameter_error", "invalid_request_error"),
    "InternalError.Algo.InvalidParameter": ("invalid_parameter_error", "invalid_request_error"),
    "InternalError": ("internal_error", "internal_error"),
}

# -- today's models, by name (fnmatch globs on the model id) ----------------------------------------
# Model Studio "Deep thinking" (help.aliyun.com/zh/model-studio/deep-thinking, 2026): hybrid models
# take enable_thinking; commercial Qwen3 (qwen-plus/flash/turbo, qwen3-max) default to off,
# open-source Qwen3 and Qwen3.5+ ("其中qwen3.5-plus默认开启", dify-official-plugins#2628) to on;
# thinking-only models (QwQ, QVQ, *-thinking) cannot be turned off.
THINKING_ONLY = ("qwq*", "qvq*", "*-thinking*", "deepseek-r1*")
THINKING_BY_DEFAULT = ("qwen3-*b", "qwen3.[5-9]*")
HYBRID_OFF_BY_DEFAULT = (
    "qwen-plus*",
    "qwen-flash*",
    "qwen-turbo*",
    "qwen3-max*",
    "qwen3-vl-plus*",
    "qwen3-omni-flash*",
)
# Open-source Qwen3 refuse a non-streaming call while thinking (langchain4j#3974 native,
# infiniflow/ragflow#8972 compatible mode, vybestack/llxprt-code#229 on qwen3-235b-a22b).
NO_NON_STREAM_THINKING = ("qwen3-*b", "qwen3.[5-9]-*b", "qwen3.[5-9]-*b-*")
# Stream-only: QwQ/QVQ/*-thinking and Qwen-Omni (WEIFENG2333/VideoCaptioner#438 on qwq-plus,
# microsoft/UFO#215 on qwen-omni-turbo; Model Studio "Qwen-Omni": streaming output only).
STREAM_ONLY = ("qwq*", "qvq*", "*omni*", "*-thinking*")
# "The DashScope API for the Qwen3.5 series uses a multimodal interface" (text-generation: url error).
MULTIMODAL_ONLY = ("qwen3.[5-9]*",)

NON_STREAM_THINKING = FakeError(
    400, "InvalidParameter", "parameter.enable_thinking must be set to false for non-streaming calls"
)
STREAM_ONLY_ERROR = FakeError(
    400,
    "InvalidParameter",
    "This model only support stream mode, please enable the stream parameter to access the model. ",
)
# pydantic/pydantic-ai#1265: "required" is refused; "none", "auto" and a named function are accepted.
REQUIRED_ERROR = FakeError(400, "InvalidParameter", 'tool_choice is one of the strings that should be ["none", "auto"]')
# cloudwego/eino#994 (qwen3.5-plus), agentscope-ai/agentscope#1608 (qwen3.8-max), QwenLM/qwen-code#7659.
THINKING_TOOL_CHOICE_ERROR = FakeError(
    400,
    "InternalError.Algo.InvalidParameter",
    "The tool_choice parameter does not support being set to required or object in thinking mode",
)
URL_ERROR = FakeError(400, "InvalidParameter", "url error, please check url！")


def _matches(model: str, patterns: tuple[str, ...]) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def thinks(model: str, params: Mapping[str, Any]) -> bool:
    """Whether DashScope runs ``model`` in thinking mode for these parameters."""
    if _matches(model, THINKING_ONLY):
        return True
    if "instruct" in model:
        return False
    explicit = params.get("enable_thinking")
    if _matches(model, (*THINKING_BY_DEFAULT, *HYBRID_OFF_BY_DEFAULT)) and explicit is not None:
        return bool(explicit)
    return _matches(model, THINKING_BY_DEFAULT)


def model_rule_error(model: str, params: Mapping[str, Any], *, stream: bool, path: str) -> FakeError | None:
    """The 400 today's model ``model`` gives these parameters, or None."""
    if path == TEXT_PATH and _matches(model, MULTIMODAL_ONLY):
        return URL_ERROR
    if not stream and _matches(model, STREAM_ONLY):
        return STREAM_ONLY_ERROR
    thinking = thinks(model, params)
    if not stream and thinking and _matches(model, NO_NON_STREAM_THINKING):
        return NON_STREAM_THINKING
    choice = params.get("tool_choice")
    if choice == "required" or (isinstance(choice, str) and choice not in ("none", "auto")):
        return REQUIRED_ERROR
    if thinking and isinstance(choice, dict):
        return THINKING_TOOL_CHOICE_ERROR
    return None


@dataclass
class Turn:
    """What the fake answers to one request."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", " from", " DashScope"])
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    """``{"id", "name", "arguments"}``; streamed as an opening fragment and a continuation."""
    finish: str | None = None
    """The native finish reason; by default ``stop``, or ``tool_calls`` in a tool-call stream
    (a non-streamed tool call says ``stop``, as captured with a forced ``tool_choice``)."""
    error: FakeError | None = None
    """Answer with this HTTP error."""
    sse_error_status: int | None = None
    """Send ``error`` as a native SSE ``event:error`` frame with this HTTP status (both APIs)."""
    stream_error: FakeError | None = None
    """Send ``event:error`` (native) / ``data: {"error"}`` (compatible) after ``error_after`` events."""
    error_after: int = 0
    native_error_event: bool = False
    """Compatible mode: send ``stream_error`` as a native ``event:error`` frame rather than as
    ``data: {"error": ...}`` (a defensive case: both shapes must become typed errors)."""
    cut_after: int | None = None
    """Close the stream after this many events, before any finish reason."""
    parallel_index_zero: bool = False
    """Give every tool call native index 0 (some models do); calls then differ only by id."""
    input_tokens: int = 8
    cache_created: int = 0
    """Tokens written to an explicit cache (``cache_control`` parts), reported in usage as
    ``prompt_tokens_details.cache_creation_input_tokens`` (Model Studio "Context cache")."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    host: str = ""
    request_id: str = ""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    chunks: list[bytes]


class FakeDashScope:
    def __init__(self, keys: tuple[str, ...] = (KEY,), default: Turn | None = None) -> None:
        self.keys = set(keys)
        self.default = default or Turn()
        self.turns: deque[Turn] = deque()
        self.requests: list[Recorded] = []
        self.embedding_batches: list[int] = []
        """Texts in each embeddings request, in order."""
        self.transport = httpx.MockTransport(self._mock_handler)
        self.live_url: str | None = None
        """Set while the fake is served on 127.0.0.1 for a test (conftest's ``fake`` fixture)."""
        self.live_transport = "httpx"
        self._lock = threading.Lock()

    def queue(self, *turns: Turn) -> FakeDashScope:
        self.turns.extend(turns)
        return self

    # -- adapters -------------------------------------------------------------------------------

    async def _mock_handler(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        with self._lock:
            turn = self.turns.popleft() if self.turns else self.default
        return self.respond(request, turn)

    def respond(self, request: httpx.Request, turn: Turn) -> httpx.Response:
        """The fake's answer to ``request`` as an httpx response (streams stay streams)."""
        reply = self.handle(request.method, request.url.path, dict(request.headers), request.content, turn)

        async def body() -> AsyncIterator[bytes]:
            for chunk in reply.chunks:
                yield chunk

        return httpx.Response(reply.status, headers=reply.headers, content=body())

    def serve(self) -> AbstractContextManager[str]:
        """A real HTTP server on 127.0.0.1 for SDKs; yields its ``http://127.0.0.1:port``."""
        return serve_handler(self._mock_handler)

    # -- the service ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes, turn: Turn | None = None) -> Reply:
        turn = turn or self.default
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request_id = str(uuid.uuid4())
        self.requests.append(Recorded(method, path, lower, body, lower.get("host", ""), request_id))
        compat = path in (COMPAT_PATH, COMPAT_EMBEDDINGS_PATH)
        if method != "POST" or path not in (TEXT_PATH, MULTIMODAL_PATH, COMPAT_PATH, *EMBEDDING_PATHS):
            return _json_reply(
                404, {"code": "InvalidURL", "message": "Invalid URL provided.", "request_id": request_id}
            )
        auth = lower.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.keys:
            return self._error(ERRORS["auth"], request_id, compat)
        if turn.error is not None:
            return self._error(turn.error, request_id, compat, sse_status=turn.sse_error_status)
        if path in EMBEDDING_PATHS:  # fake_embeddings.py
            self.embedding_batches.append(_embedding_count(body, compat))
            answer = compat_embeddings if compat else native_embeddings
            return _json_reply(*answer(body, request_id))
        if compat:
            problem = _check_compat(body)
            if problem:
                return self._error(FakeError(400, "InvalidParameter", problem), request_id, compat)
            stream = bool(body.get("stream"))
            if rule := model_rule_error(body["model"], body, stream=stream, path=path):
                return self._error(rule, request_id, compat, stream=stream)
            if not thinks(body["model"], body):
                turn = dataclasses.replace(turn, reasoning=[])
            if stream:
                return _compat_stream(body, turn, request_id)
            return _json_reply(200, _compat_completion(body, turn, request_id))
        problem = _check_native(body, multimodal=path == MULTIMODAL_PATH)
        if problem:
            return self._error(FakeError(400, "InvalidParameter", problem), request_id, compat)
        params = body.get("parameters") or {}
        stream = lower.get("x-dashscope-sse") == "enable"
        if rule := model_rule_error(body["model"], params, stream=stream, path=path):
            return self._error(rule, request_id, compat, stream=stream)
        if not thinks(body["model"], params):
            turn = dataclasses.replace(turn, reasoning=[])
        if stream:
            return _native_stream(body, turn, request_id, multimodal=path == MULTIMODAL_PATH)
        return _json_reply(200, _native_completion(body, turn, request_id, multimodal=path == MULTIMODAL_PATH))

    @staticmethod
    def _error(
        error: FakeError, request_id: str, compat: bool, *, stream: bool = False, sse_status: int | None = None
    ) -> Reply:
        if (stream and not compat) or sse_status is not None:
            # A streamed native request is refused as one SSE error event on a 200 (capture
            # parameter-error-sse in cnblogs/dashscope-sdk), the real status in the comment line;
            # ``sse_status`` sends that frame with another HTTP status (a 4xx, as proxies do).
            data = {"code": error.code, "message": error.message, "request_id": request_id}
            return Reply(
                200 if sse_status is None else sse_status,
                {"content-type": "text/event-stream;charset=UTF-8", "x-request-id": request_id},
                [_sse(1, "error", error.status, data)],
            )
        if compat:
            code, kind = _COMPAT_CODES.get(error.code, (error.code, error.code))
            body: dict[str, Any] = {
                "error": {"message": error.message, "type": kind, "param": None, "code": code},
                "request_id": request_id,
            }
        else:
            body = {"code": error.code, "message": error.message, "request_id": request_id}
        return _json_reply(error.status, body, error.headers)


EMBEDDING_PATHS = (NATIVE_EMBEDDINGS_PATH, COMPAT_EMBEDDINGS_PATH)


def _embedding_count(body: Any, compat: bool) -> int:
    body = body if isinstance(body, dict) else {}
    texts = body.get("input")
    if not compat:
        texts = texts.get("texts") if isinstance(texts, dict) else None
    return 1 if isinstance(texts, str) else len(texts) if isinstance(texts, list) else 0


# -- validation ---------------------------------------------------------------------------------

_NATIVE_ROLES = {"system", "user", "assistant", "tool"}
_MM_KEYS = {"text", "image", "audio", "video"}


def _check_native(body: Any, *, multimodal: bool) -> str | None:
    if not isinstance(body, dict) or not body.get("model"):
        return "Model not specified."
    messages = (body.get("input") or {}).get("messages")
    if not isinstance(messages, list) or not messages:
        return "Required input parameter missing from request."
    for message in messages:
        if message.get("role") not in _NATIVE_ROLES:
            return f"Role must be in {sorted(_NATIVE_ROLES)}"
        content = message.get("content")
        if multimodal:
            if isinstance(content, str):
                continue
            if not isinstance(content, list) or not all(
                isinstance(p, dict) and len(p) == 1 and set(p) <= _MM_KEYS for p in content
            ):
                return "The content of a multimodal message must be a list of text/image/audio/video items."
        elif isinstance(content, list) and all(_is_cache_text_part(p) for p in content):
            continue  # explicit cache: text parts with cache_control (Model Studio "Context cache")
        elif not isinstance(content, str):
            return "Input should be a valid string: messages.content (use the multimodal API for images)."
    if not isinstance(body.get("parameters", {}), dict):
        return "parameters must be an object"
    return _check_partial(messages)


def _is_cache_text_part(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
        and set(part) <= {"type", "text", "cache_control"}
    )


def _check_partial(messages: list[Any]) -> str | None:
    """Partial Mode: ``partial`` only on the last message, an assistant one (both APIs)."""
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("partial") is None:
            continue
        if i != last or message.get("role") != "assistant":
            return "partial can only be set on the last message, which must be an assistant message"
    return None


def _check_compat(body: Any) -> str | None:
    if not isinstance(body, dict) or not body.get("model"):
        return "Model not specified."
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "'messages' must contain at least one message"
    if "input" in body or "parameters" in body:
        return "Unrecognized request argument: input/parameters (native fields in compatible mode)"
    return _check_partial(body["messages"])


# -- native replies -----------------------------------------------------------------------------


def _json_reply(status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
    request_id = data.get("request_id", "") if isinstance(data, dict) else ""
    return Reply(
        status,
        {"content-type": "application/json", "x-request-id": request_id, **(headers or {})},
        [json.dumps(data, ensure_ascii=False).encode()],
    )


def _result_format(params: dict[str, Any], multimodal: bool) -> str:
    """Text models default to the legacy ``text`` shape; the multimodal API always answers
    with ``choices``."""
    return "message" if multimodal else str(params.get("result_format", "text"))


def _native_message(content: str, multimodal: bool, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"text": content}] if multimodal else content, **extra}


def _tool_calls(turn: Turn) -> list[dict[str, Any]]:
    return [
        {
            "function": {"name": c["name"], "arguments": c["arguments"]},
            "index": 0 if turn.parallel_index_zero else i,
            "id": c["id"],
            "type": "function",
        }
        for i, c in enumerate(turn.tool_calls)
    ]


def _native_completion(body: dict[str, Any], turn: Turn, request_id: str, *, multimodal: bool) -> dict[str, Any]:
    params = body.get("parameters") or {}
    text = "".join(turn.pieces)
    output_tokens = len(turn.pieces) + len(turn.reasoning)
    usage: dict[str, Any] = {
        "input_tokens": turn.input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": turn.input_tokens + output_tokens,
    }
    if turn.reasoning:
        usage["output_tokens_details"] = {"reasoning_tokens": len(turn.reasoning)}
    _cache_details(usage, turn)
    finish = turn.finish or "stop"
    if _result_format(params, multimodal) != "message":
        return {"output": {"finish_reason": finish, "text": text}, "usage": usage, "request_id": request_id}
    choices = []
    for i in range(int(params.get("n") or 1)):
        extra: dict[str, Any] = {}
        if turn.reasoning:
            extra["reasoning_content"] = "".join(turn.reasoning)
        if turn.tool_calls:
            extra["tool_calls"] = _tool_calls(turn)
        choice: dict[str, Any] = {
            "finish_reason": finish,
            "message": _native_message("" if turn.tool_calls else text, multimodal, **extra),
        }
        if params.get("n"):
            choice["index"] = i
        choices.append(choice)
    return {"output": {"choices": choices}, "usage": usage, "request_id": request_id}


def _native_events(body: dict[str, Any], turn: Turn, multimodal: bool) -> list[tuple[dict[str, Any], str]]:
    """(message, finish_reason) per event, before usage and framing; incremental deltas."""
    events: list[tuple[dict[str, Any], str]] = []
    for piece in turn.reasoning:
        events.append((_native_message("", multimodal, reasoning_content=piece), "null"))
    for piece in turn.pieces:
        extra = {"reasoning_content": ""} if turn.reasoning else {}
        events.append((_native_message(piece, multimodal, **extra), "null"))
    for call in _tool_calls(turn):
        args = call["function"]["arguments"]
        half = len(args) // 2
        head = {**call, "function": {"name": call["function"]["name"], "arguments": args[:half]}}
        tail = {"index": call["index"], "id": "", "type": "function", "function": {"arguments": args[half:]}}
        events.append((_native_message("", multimodal, tool_calls=[head]), "null"))
        events.append((_native_message("", multimodal, tool_calls=[tail]), "null"))
    finish = turn.finish or ("tool_calls" if turn.tool_calls else "stop")
    if turn.tool_calls:
        events[-1] = (events[-1][0], finish)  # as captured: the last fragment carries the finish
    else:
        events.append((_native_message("", multimodal), finish))
    return events


def _cumulative(events: list[tuple[dict[str, Any], str]], multimodal: bool) -> list[tuple[dict[str, Any], str]]:
    """What DashScope streams without ``incremental_output: true``: the whole text so far."""
    text = reasoning = ""
    out = []
    for message, finish in events:
        content = message.get("content")
        text += content[0]["text"] if isinstance(content, list) else content
        reasoning += message.get("reasoning_content", "")
        extra = {k: v for k, v in message.items() if k not in ("role", "content", "reasoning_content")}
        if "reasoning_content" in message:
            extra["reasoning_content"] = reasoning
        out.append((_native_message(text, multimodal, **extra), finish))
    return out


def _cache_details(usage: dict[str, Any], turn: Turn) -> None:
    if turn.cache_created:
        usage["prompt_tokens_details"] = {
            "cached_tokens": 0,
            "cache_creation_input_tokens": turn.cache_created,
            "cache_type": "ephemeral",
        }


def _sse(event_id: int, kind: str, status: int, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False)
    return f"id:{event_id}\nevent:{kind}\n:HTTP_STATUS/{status}\ndata:{payload}\n\n".encode()


def _native_stream(body: dict[str, Any], turn: Turn, request_id: str, *, multimodal: bool) -> Reply:
    params = body.get("parameters") or {}
    events = _native_events(body, turn, multimodal)
    if not params.get("incremental_output"):
        events = _cumulative(events, multimodal)
    n = int(params.get("n") or 1)
    chunks: list[bytes] = []
    produced = 0
    for message, finish in events:
        for i in range(n):
            if turn.stream_error is not None and produced == turn.error_after:
                error = turn.stream_error
                data = {"code": error.code, "message": error.message, "request_id": request_id}
                chunks.append(_sse(produced + 1, "error", error.status, data))
                return _sse_reply(chunks, request_id)
            if turn.cut_after is not None and produced == turn.cut_after:
                return _sse_reply(chunks, request_id)
            produced += 1
            choice: dict[str, Any] = {"message": message, "finish_reason": finish}
            if n > 1 or turn.tool_calls:
                choice["index"] = i
            if _result_format(params, multimodal) == "message":
                output: dict[str, Any] = {"choices": [choice]}
            else:
                output = {"finish_reason": finish, "text": _plain(message)}
            usage: dict[str, Any] = {
                "total_tokens": turn.input_tokens + produced,
                "input_tokens": turn.input_tokens,
                "output_tokens": produced,
            }
            if turn.reasoning:
                usage["output_tokens_details"] = {"reasoning_tokens": min(produced, len(turn.reasoning))}
            _cache_details(usage, turn)
            chunks.append(_sse(produced, "result", 200, {"output": output, "usage": usage, "request_id": request_id}))
    return _sse_reply(chunks, request_id)


def _plain(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content[0]["text"] if isinstance(content, list) else str(content or "")


def _sse_reply(chunks: list[bytes], request_id: str) -> Reply:
    return Reply(200, {"content-type": "text/event-stream;charset=UTF-8", "x-request-id": request_id}, chunks)


# -- compatible-mode replies (OpenAI's wire format, DashScope's quirks) ---------------------------


def _compat_completion(body: dict[str, Any], turn: Turn, request_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"content": "".join(turn.pieces), "role": "assistant"}
    if turn.reasoning:
        message["reasoning_content"] = "".join(turn.reasoning)
    if turn.tool_calls:
        message["content"] = ""
        message["tool_calls"] = [{k: v for k, v in c.items()} for c in _tool_calls(turn)]
    out_tokens = len(turn.pieces) + len(turn.reasoning)
    usage: dict[str, Any] = {
        "prompt_tokens": turn.input_tokens,
        "completion_tokens": out_tokens,
        "total_tokens": turn.input_tokens + out_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    if turn.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(turn.reasoning)}
    _cache_details(usage, turn)
    return {
        "choices": [
            {
                "message": message,
                "finish_reason": turn.finish or ("tool_calls" if turn.tool_calls else "stop"),
                "index": 0,
                "logprobs": None,
            }
        ],
        "object": "chat.completion",
        "usage": usage,
        "created": 1789793891,
        "system_fingerprint": None,
        "model": body["model"],
        "id": f"chatcmpl-{request_id}",
    }


def _compat_stream(body: dict[str, Any], turn: Turn, request_id: str) -> Reply:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    cid = f"chatcmpl-{request_id}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "choices": [{"delta": delta, "finish_reason": finish, "index": 0, "logprobs": None}],
            "object": "chat.completion.chunk",
            "usage": None,
            "created": 1789793891,
            "system_fingerprint": None,
            "model": body["model"],
            "id": cid,
        }
        return data

    events = [chunk({"content": "", "role": "assistant"})]
    events += [chunk({"content": None, "reasoning_content": p}) for p in turn.reasoning]
    events += [chunk({"content": p}) for p in turn.pieces]
    for i, call in enumerate(_tool_calls(turn)):
        args = call["function"]["arguments"]
        head = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": args},
        }
        events.append(chunk({"content": None, "tool_calls": [head]}))
    events.append(chunk({"content": ""}, turn.finish or ("tool_calls" if turn.tool_calls else "stop")))
    if include_usage:
        out_tokens = len(turn.pieces) + len(turn.reasoning)
        usage: dict[str, Any] = {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": turn.input_tokens + out_tokens,
        }
        if turn.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(turn.reasoning)}
        _cache_details(usage, turn)
        events.append({**chunk({}), "choices": [], "usage": usage})
    chunks = []
    for n, data in enumerate(events):
        if turn.stream_error is not None and n == turn.error_after and turn.native_error_event:
            native = {"code": turn.stream_error.code, "message": turn.stream_error.message, "request_id": request_id}
            chunks.append(_sse(n + 1, "error", turn.stream_error.status, native))
            break
        if turn.stream_error is not None and n == turn.error_after:
            code, kind = _COMPAT_CODES.get(turn.stream_error.code, (turn.stream_error.code,) * 2)
            error = {"error": {"message": turn.stream_error.message, "type": kind, "param": None, "code": code}}
            chunks.append(f"data: {json.dumps(error)}\n\n".encode())
            break
        if turn.cut_after is not None and n == turn.cut_after:
            break
        chunks.append(f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
    else:
        chunks.append(b"data: [DONE]\n\n")
    return Reply(200, {"content-type": "text/event-stream;charset=UTF-8", "x-request-id": request_id}, chunks)
