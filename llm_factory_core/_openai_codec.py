"""The OpenAI wire codec (request body, response, SSE stream, error body) and a provider built on it.

The openai and deepseek plugins and Qwen's compatible mode reuse this instead of copying it; they
override a method or two for their additions (Azure's URL and filter chunks, DeepSeek's finish
reasons, ...).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, cast

import httpx

from ._errors import (
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    ProviderError,
    UpstreamConnectionError,
)
from ._json import dumps, loads
from ._message_fields import MessageFields
from ._provider import Provider, error_for_status, parse_retry_after
from ._raw_reply import RAW_REPLY, plain_completion
from ._raw_sse import RAW_SSE, raw_openai_stream
from ._request import ChatRequest
from ._sse import aiter_sse
from ._types import ChatCompletion, ChatCompletionChunk

__all__ = [
    "MAX_TOOL_CALL_ID_LENGTH",
    "OpenAICompatibleProvider",
    "OpenAIStreamState",
    "classify_openai_error",
    "encode_openai_messages",
    "encode_openai_request",
    "new_completion_id",
    "short_tool_call_id",
]

log = logging.getLogger("llm_factory_core.openai_codec")

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_CONTEXT_RE = re.compile(
    r"context.length|maximum context|context window|too many tokens|prompt is too long"
    r"|reduce the length|input is too long|exceeds the model's maximum|range of input length",
    re.IGNORECASE,
)
_RETRY_HINT_RE = re.compile(r"retry after (\d+(?:\.\d+)?) (second|millisecond)", re.IGNORECASE)
_STATUS_FOR_CODE = {
    "invalid_api_key": 401,
    "invalid_request_error": 400,
    "invalid_parameter_error": 400,
    "context_length_exceeded": 400,
    "content_filter": 400,
    "rate_limit_exceeded": 429,
    "limit_requests": 429,
    "insufficient_quota": 429,
    "server_error": 500,
}
_AZURE_FILTER_KEYS = ("content_filter_results", "content_filter_offsets", "content_filter_raw")


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


MAX_TOOL_CALL_ID_LENGTH = 40
"""OpenAI and Azure reject a history tool-call id longer than this: 400 ``Invalid
'messages[2].tool_calls[0].id': string too long. Expected a string with maximum length 40, but got
a string with length 1523 instead.`` (code ``string_above_max_length``; camel-ai/camel#2215,
microsoft/autogen#6377, Portkey-AI/gateway#1062 on Azure)."""

# What OpenAI's Chat Completions API accepts in a message, per role, in a tool call and in a content
# part (openai-python ``types/chat/chat_completion_*_param.py``). Anything else is another
# provider's field (Claude's ``thinking_blocks``, Gemini's ``extra_content``, DeepSeek's
# ``reasoning_content``, Anthropic-style ``cache_control``, a streamed ``index``...), which the API
# answers with 400 ``Unknown parameter: 'messages[1].thinking_blocks'.`` (code
# ``unknown_parameter``; pydantic/pydantic-ai on ``messages[1].content[1].file.data``, FastGPT#1253
# on ``messages[2].tool_calls[0].index``).
OPENAI_MESSAGE_FIELDS = MessageFields(
    roles={
        "system": frozenset({"role", "content", "name"}),
        "developer": frozenset({"role", "content", "name"}),
        "user": frozenset({"role", "content", "name"}),
        "assistant": frozenset({"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}),
        "tool": frozenset({"role", "content", "tool_call_id"}),
        "function": frozenset({"role", "content", "name"}),
    },
    parts={
        "text": frozenset({"type", "text", "prompt_cache_breakpoint"}),
        "image_url": frozenset({"type", "image_url", "prompt_cache_breakpoint"}),
        "input_audio": frozenset({"type", "input_audio", "prompt_cache_breakpoint"}),
        "file": frozenset({"type", "file", "prompt_cache_breakpoint"}),
        "refusal": frozenset({"type", "refusal"}),
    },
    tool_call=frozenset({"id", "type", "function", "custom"}),
)


def short_tool_call_id(tool_call_id: str) -> str:
    """``tool_call_id`` itself when it is at most 40 characters, else a short id derived from it
    (``call_`` + 32 hex digits of its SHA-256). A pure function of the id, so an assistant's
    ``tool_calls[].id`` and the tool message answering it map to the same value in every request."""
    if len(tool_call_id) <= MAX_TOOL_CALL_ID_LENGTH:
        return tool_call_id
    return "call_" + hashlib.sha256(tool_call_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def encode_openai_messages(messages: list[Any], *, strip_foreign_fields: bool = False) -> list[Any]:
    """``messages`` as an OpenAI upstream takes them: tool-call ids over 40 characters shortened
    (``short_tool_call_id``), and with ``strip_foreign_fields`` every field the OpenAI API does not
    define dropped (``OPENAI_MESSAGE_FIELDS``). Returns ``messages`` itself when nothing changes (the common
    case); changed messages are copies, never the caller's dicts (failover shares them). Linear in
    the size of the conversation."""
    out: list[Any] | None = None
    for i, message in enumerate(messages):
        fixed = _encode_message(message, strip_foreign_fields) if isinstance(message, dict) else message
        if fixed is not message and out is None:
            out = list(messages[:i])
        if out is not None:
            out.append(fixed)
    return messages if out is None else out


def _encode_message(message: dict[str, Any], strip: bool) -> dict[str, Any]:
    result: dict[str, Any] = OPENAI_MESSAGE_FIELDS.keep(message) if strip else message
    calls = result.get("tool_calls")
    if isinstance(calls, list) and calls:
        fixed_calls = _short_ids(calls)
        if fixed_calls is not calls:
            result = result if result is not message else dict(message)
            result["tool_calls"] = fixed_calls
    call_id = result.get("tool_call_id")
    if isinstance(call_id, str) and len(call_id) > MAX_TOOL_CALL_ID_LENGTH:
        result = result if result is not message else dict(message)
        result["tool_call_id"] = short_tool_call_id(call_id)
    return result


def _short_ids(calls: list[Any]) -> list[Any]:
    out: list[Any] | None = None
    for i, call in enumerate(calls):
        fixed = call
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str) and len(call_id) > MAX_TOOL_CALL_ID_LENGTH:
            fixed = {**call, "id": short_tool_call_id(call_id)}
        if fixed is not call and out is None:
            out = list(calls[:i])
        if out is not None:
            out.append(fixed)
    return calls if out is None else out


def encode_openai_request(
    request: ChatRequest, model: str, *, stream: bool, strip_foreign_fields: bool = False
) -> dict[str, Any]:
    """The upstream body: every set OpenAI field, the upstream model id, then ``extra_body``.

    Messages go through ``encode_openai_messages``: long tool-call ids are always shortened;
    ``strip_foreign_fields`` (the openai plugin's default, off for DeepSeek and Qwen, whose
    upstreams read ``reasoning_content`` and which handle their own fields) drops every message
    field OpenAI's API does not define."""
    body: dict[str, Any] = {
        "model": model,
        "messages": encode_openai_messages(request.messages, strip_foreign_fields=strip_foreign_fields),
    }
    body.update(request.openai_params())
    if stream:
        body["stream"] = True
    else:
        body.pop("stream_options", None)
    if request.extra_body:
        body.update(request.extra_body)
    return body


def classify_openai_error(
    status: int, headers: Mapping[str, str], body: bytes
) -> tuple[type[ProviderError], str, dict[str, Any]]:
    """Class, message and keyword arguments for an OpenAI-style error reply (also Azure's,
    DashScope compatible mode's and Gemini compatible mode's list-wrapped form)."""
    try:
        data = loads(body) if body.strip() else {}
    except ValueError:
        data = {}
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    error = data.get("error", data) if isinstance(data, dict) else {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    # Never cut here: Provider.error masks the deployment's secrets first, then caps the length.
    message = str(error.get("message") or body.decode("utf-8", "replace") or f"HTTP {status}")
    code = error.get("code")
    code = str(code) if code is not None else None
    err_type = str(error.get("type") or "")
    inner = error.get("innererror") or error.get("inner_error") or {}
    kwargs: dict[str, Any] = {"status": status, "code": code, "param": error.get("param")}
    retry_after = parse_retry_after(headers)
    if retry_after is None and (hint := _RETRY_HINT_RE.search(message)):
        amount = float(hint.group(1))
        retry_after = amount / 1000 if hint.group(2).lower().startswith("milli") else amount
    kwargs["retry_after"] = retry_after

    cls: type[ProviderError]
    filtered = {code, err_type, isinstance(inner, dict) and inner.get("code")}
    if filtered & {"content_filter", "ResponsibleAIPolicyViolation", "DataInspectionFailed"}:
        cls = ContentFilterError
    elif code in {"insufficient_quota", "Arrearage"} or err_type in {"insufficient_quota", "Arrearage"}:
        cls = InsufficientQuotaError
    elif (
        status < 500
        and status not in (401, 402, 403, 408, 409, 429)
        and (code == "context_length_exceeded" or _CONTEXT_RE.search(message))
    ):
        cls = ContextLengthError
    else:
        cls = error_for_status(status)
    return cls, message, kwargs


class OpenAIStreamState:
    """Per-stream state: a stable id and created time (Azure's annotation chunks carry empty
    ones) and whether a finish reason was seen (a stream may end without ``[DONE]`` after it).
    A provider with state of its own per stream subclasses it and passes one to
    ``decode_stream``; ``adapt_chunk`` and ``raw_passthrough`` get it with every event."""

    __slots__ = ("created", "finished", "id", "model")

    def __init__(self, model: str) -> None:
        self.id = ""
        self.created = 0
        self.finished = False
        self.model = model


class OpenAICompatibleProvider(Provider):
    """A provider for any endpoint speaking OpenAI's chat completions wire format.

    Subclasses override ``chat_url``, ``auth_headers`` or the ``adapt_*`` hooks; the rest is shared.
    """

    chat_path: ClassVar[str] = "/chat/completions"
    raw_sse: ClassVar[bool] = False
    """Whether ``decode_stream`` may forward plain events byte for byte to a caller that asked for
    it (``RAW_SSE``, see ``_raw_sse``). Only for providers whose ``adapt_chunk`` changes nothing in
    a plain OpenAI chunk (``raw_passthrough`` narrows it per event)."""
    raw_reply: ClassVar[bool] = False
    """Whether ``complete`` may hand a plain non-streamed reply on as its bytes to a caller that
    asked for it (``RAW_REPLY``, see ``_raw_reply``). Only for providers whose ``parse_completion``
    changes nothing in a plain OpenAI reply; a subclass that overrides it, ``adapt_completion`` or
    ``map_finish_reason`` loses it unless it sets it again itself."""

    # -- request --------------------------------------------------------------------------------

    def chat_url(self) -> str:
        base = self.settings.api_base or self.default_api_base
        if not base:
            raise self.error(BadRequestError, "no api_base configured for this deployment")
        return base.rstrip("/") + self.chat_path

    def auth_headers(self) -> dict[str, str]:
        key = self.settings.api_key
        return {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return encode_openai_request(request, self.settings.model, stream=stream)

    # -- response -------------------------------------------------------------------------------

    def map_finish_reason(self, reason: Any) -> Any:
        """Provider-native finish reasons must never reach callers; unknown ones become ``stop``."""
        if reason is None or reason in FINISH_REASONS:
            return reason
        log.warning("%s: unknown finish_reason %r mapped to 'stop'", self.name, reason)
        return "stop"

    def adapt_completion(self, data: dict[str, Any]) -> dict[str, Any]:
        """Fix up a decoded non-streaming body before validation (hook for subclasses)."""
        return data

    def parse_completion(self, data: Any) -> ChatCompletion:
        if isinstance(data, dict) and data.get("error"):
            raise self.error_from_payload(data)
        if not isinstance(data, dict) or "choices" not in data:
            raise self.error(UpstreamConnectionError, "upstream reply has no choices")
        data = self.adapt_completion(data)
        for choice in data["choices"]:
            choice["finish_reason"] = self.map_finish_reason(choice.get("finish_reason"))
        data["id"] = data.get("id") or new_completion_id()
        data["created"] = data.get("created") or int(time.time())
        data["model"] = data.get("model") or self.settings.model
        data["object"] = "chat.completion"
        return ChatCompletion.model_validate(data)

    def adapt_chunk(
        self, data: dict[str, Any], state: OpenAIStreamState
    ) -> dict[str, Any] | list[dict[str, Any]] | None:
        """Normalise one decoded stream event; None drops it, a list splits it into several
        chunks (an upstream that puts the usage on its finish chunk). Handles Azure's
        prompt-filter and annotation chunks (empty id, ``object: ""``, choices without a delta)."""
        choices = data.get("choices") or []
        kept = []
        for choice in choices:
            for key in _AZURE_FILTER_KEYS:
                choice.pop(key, None)
            if "delta" not in choice:
                if choice.get("finish_reason") is None:
                    continue
                choice["delta"] = {}
            choice["finish_reason"] = self.map_finish_reason(choice.get("finish_reason"))
            if choice["finish_reason"] is not None:
                state.finished = True
            kept.append(choice)
        if not kept and not data.get("usage"):
            return None
        data.pop("prompt_filter_results", None)
        data.pop("prompt_annotations", None)
        data["choices"] = kept
        if not state.id:
            state.id = data.get("id") or new_completion_id()
            state.created = data.get("created") or int(time.time())
        data["id"] = state.id
        data["created"] = state.created
        data["object"] = "chat.completion.chunk"
        data["model"] = data.get("model") or state.model
        return data

    def raw_passthrough(self, data: dict[str, Any], state: OpenAIStreamState) -> bool:
        """Whether this plain-shaped event may be forwarded unchanged (with ``raw_sse``); False
        sends it through ``adapt_chunk``. A hook for subclasses that fix up some events, or watch
        them (each event reaches exactly one of the two hooks)."""
        return True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "raw_reply" not in cls.__dict__ and any(
            name in cls.__dict__ for name in ("parse_completion", "adapt_completion", "map_finish_reason")
        ):
            cls.raw_reply = False  # its replies are fixed up: never forwarded unparsed
        hook = cls.__dict__.get("raw_passthrough")
        if hook is not None and len(inspect.signature(hook).parameters) == 2:
            # ``raw_passthrough(self, data)``, as the hook was first published: still called.
            def with_state(self: Any, data: dict[str, Any], state: OpenAIStreamState) -> bool:
                return bool(hook(self, data))

            cls.raw_passthrough = with_state  # type: ignore[method-assign]

    def decode_stream(
        self, response: httpx.Response, state: OpenAIStreamState | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Chunks of an OpenAI SSE stream. ``[DONE]`` ends it; an error event raises a typed
        error; one malformed event is skipped and logged; a stream that ends without ``[DONE]``
        is complete if a finish reason arrived and an error otherwise."""
        if self.raw_sse and RAW_SSE.get():
            # The caller writes raw frames (the server's pass-through): the same contract without
            # re-encoding, and returned as it is (no generator layer per chunk in between).
            return cast(AsyncIterator[ChatCompletionChunk], raw_openai_stream(self, response, state))
        return self._decode_parsed(response, state or OpenAIStreamState(self.settings.model))

    async def _decode_parsed(
        self, response: httpx.Response, state: OpenAIStreamState
    ) -> AsyncIterator[ChatCompletionChunk]:
        async for event in aiter_sse(response):
            data_text = event.data
            if not data_text:
                continue
            if data_text.startswith("[DONE]"):
                return
            try:
                data = loads(data_text)
            except ValueError:
                log.warning("%s: skipped a malformed stream event", self.name)
                continue
            if not isinstance(data, dict):
                log.warning("%s: skipped a stream event that is not an object", self.name)
                continue
            if data.get("error"):
                raise self.error_from_payload(data)
            adapted = self.adapt_chunk(data, state)
            if adapted is None:
                continue
            for item in adapted if isinstance(adapted, list) else (adapted,):
                try:
                    yield ChatCompletionChunk.model_validate(item)
                except ValueError:
                    log.warning("%s: skipped a stream event of unexpected shape", self.name)
        if not state.finished:
            raise self.error(UpstreamConnectionError, "upstream closed the stream before it finished")

    # -- errors ---------------------------------------------------------------------------------

    def parse_error(self, status: int, headers: httpx.Headers, body: bytes) -> ProviderError:
        cls, message, kwargs = classify_openai_error(status, headers, body)
        return self.error(cls, message, **kwargs)

    def error_from_payload(self, data: dict[str, Any]) -> ProviderError:
        """An error object inside a 200 reply or stream. Such objects rarely carry a status, so
        it is inferred from the code: a revoked key or a rate limit reported mid-stream must not
        pass for a server error."""
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        status = error.get("status")
        code = error.get("code")
        if not isinstance(status, int):
            status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
        if status is None:
            status = _STATUS_FOR_CODE.get(str(code), 500)
        return self.parse_error(status, httpx.Headers(), dumps(data))

    # -- the provider contract ------------------------------------------------------------------

    async def complete(self, url: str, body: Any, headers: Mapping[str, str] | None = None) -> ChatCompletion:
        """POST a chat body and parse the reply (``post_json`` and ``parse_completion``). A plain
        reply under ``RAW_REPLY`` comes back as a ``RawCompletion`` of its bytes (``raw_reply``)."""
        if not (self.raw_reply and RAW_REPLY.get()):
            return self.parse_completion(await self.post_json(url, body, headers))
        status, content = await self.post_for_bytes(url, body, headers)
        data = self.decode_json(status, content)
        raw = plain_completion(data, content)
        return self.parse_completion(data) if raw is None else cast(ChatCompletion, raw)

    async def chat(self, request: ChatRequest) -> ChatCompletion:
        return await self.complete(self.chat_url(), self.build_body(request, stream=False), self.auth_headers())

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        async with self.open_stream(
            self.chat_url(), self.build_body(request, stream=True), self.auth_headers()
        ) as response:
            async for chunk in self.decode_stream(response):
                yield chunk
