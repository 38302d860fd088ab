"""OpenAI request -> DashScope native request body (pure functions, no I/O).

Native body: ``{"model", "input": {"messages"}, "parameters": {...}}``. Text models take
``/services/aigc/text-generation/generation``; VL / omni / audio models take
``/services/aigc/multimodal-generation/generation`` whose message content is a list of
``{"text"}`` / ``{"image"}`` / ``{"audio"}`` / ``{"video"}`` parts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from llm_factory_core import ChatRequest

from ._thinking import plan_thinking

__all__ = [
    "MULTIMODAL_PATH",
    "TEXT_PATH",
    "encode_native_request",
    "native_headers",
    "outbound_messages",
    "wants_multimodal",
]

log = logging.getLogger("llm_factory_qwen")

TEXT_PATH = "/services/aigc/text-generation/generation"
MULTIMODAL_PATH = "/services/aigc/multimodal-generation/generation"

# qwen-vl-max, qwen2.5-vl-72b-instruct, qwen3-vl-plus, qvq-max, qwen-omni-turbo, qwen2-audio-instruct;
# and the natively multimodal Qwen3.5 generation on: "The DashScope API for the Qwen3.5 series uses
# a multimodal interface" (text-generation answers "url error"; Model Studio "Deep thinking" page).
_MULTIMODAL_MODEL = re.compile(r"(?:^|[-_.])(?:vl|omni|audio)(?:$|[-_.])|^qvq|^qwen3\.[5-9](?:$|[-_.])", re.IGNORECASE)

# OpenAI parameters DashScope's native API accepts under the same name in ``parameters``.
_SAME_NAME = (
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
)
# OpenAI parameters without a native counterpart: dropped (logged) rather than rejected upstream.
# (``reasoning_effort`` becomes ``enable_thinking`` / ``thinking_budget``: ``_thinking``.)
_UNSUPPORTED = ("frequency_penalty", "logit_bias", "user")
# Other providers' message fields (Claude's signed blocks, Gemini's thought signature): DashScope
# has no use for them, and the reasoning state they carry is not Qwen's.
_FOREIGN_MESSAGE_FIELDS = ("thinking_blocks",)
_FOREIGN_CALL_FIELDS = ("extra_content",)
_ROLES = {"developer": "system"}


def wants_multimodal(model: str, messages: Iterable[Mapping[str, Any]], forced: bool | None = None) -> bool:
    """The multimodal path for VL-type models and for any request carrying a non-text part
    (sending an image to a text model should fail upstream, not lose the image)."""
    if forced is not None:
        return forced
    if _MULTIMODAL_MODEL.search(model):
        return True
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(not _is_text_part(p) for p in content):
            return True
    return False


def _is_text_part(part: Any) -> bool:
    if not isinstance(part, Mapping):
        return False
    kind = part.get("type")
    return kind == "text" or (kind is None and set(part) == {"text"})


def _text_of(parts: list[Any]) -> str:
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, Mapping))


def _native_part(part: Any) -> Any:
    """One OpenAI content part -> DashScope's native form; parts already native pass as-is."""
    if not isinstance(part, Mapping) or "type" not in part:
        return part
    kind = part["type"]
    if kind == "text":
        return {"text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url")
        return {"image": image.get("url") if isinstance(image, Mapping) else image}
    if kind == "video_url":
        video = part.get("video_url")
        return {"video": video.get("url") if isinstance(video, Mapping) else video}
    if kind == "video":  # a list of frame URLs, as compatible mode takes it
        return {"video": part.get("video")}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        data = str(audio.get("data", ""))
        if not data.startswith(("data:", "http://", "https://", "oss://")):
            data = f"data:audio/{audio.get('format', 'wav')};base64,{data}"
        return {"audio": data}
    return {k: v for k, v in part.items() if k != "type"} or part


def _cache_part(part: Any) -> dict[str, Any]:
    out = {"type": "text", "text": str(part.get("text") or "")}
    if part.get("cache_control") is not None:
        out["cache_control"] = part["cache_control"]
    return out


def with_partial(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A final assistant message is a prefix for Qwen to continue (Partial Mode, both APIs):
    it gets ``"partial": true`` unless the caller set ``partial`` already. This is how stream
    continuation resumes a broken answer; models without Partial Mode (thinking mode) refuse it."""
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "assistant" or last.get("tool_calls") or "partial" in last:
        return messages
    return [*messages[:-1], {**last, "partial": True}]


def outbound_messages(messages: list[Any]) -> list[Any]:
    """``messages`` without other providers' fields (``thinking_blocks``; ``extra_content`` on
    tool calls). Messages without them are passed as they are (no copy: a long history costs
    one scan). ``reasoning_content`` stays: DashScope accepts it in history and ignores it."""
    out: list[Any] | None = None
    for i, message in enumerate(messages):
        cleaned = _without_foreign(message)
        if cleaned is not message:
            if out is None:
                out = list(messages[:i])
            out.append(cleaned)
        elif out is not None:
            out.append(message)
    return messages if out is None else out


def _without_foreign(message: Any) -> Any:
    if not isinstance(message, Mapping):
        return message
    calls = message.get("tool_calls")
    foreign_calls = isinstance(calls, list) and any(
        isinstance(c, Mapping) and any(f in c for f in _FOREIGN_CALL_FIELDS) for c in calls
    )
    if not foreign_calls and not any(f in message for f in _FOREIGN_MESSAGE_FIELDS):
        return message
    cleaned = {k: v for k, v in message.items() if k not in _FOREIGN_MESSAGE_FIELDS}
    if foreign_calls and isinstance(calls, list):
        cleaned["tool_calls"] = [
            {k: v for k, v in c.items() if k not in _FOREIGN_CALL_FIELDS} if isinstance(c, Mapping) else c
            for c in calls
        ]
    return cleaned


def native_messages(messages: Iterable[Mapping[str, Any]], *, multimodal: bool) -> list[dict[str, Any]]:
    """OpenAI messages -> ``input.messages``. Tool calls and tool results keep OpenAI's shape
    (DashScope uses it natively); ``developer`` becomes ``system``."""
    out: list[dict[str, Any]] = []
    for message in messages:
        msg = dict(_without_foreign(message))
        msg["role"] = _ROLES.get(msg["role"], msg["role"])
        content = msg.get("content")
        if content is None:
            content = ""  # DashScope rejects a null content (an assistant turn with only tool calls)
        if multimodal:
            parts = content if isinstance(content, list) else [{"text": content}]
            msg["content"] = [_native_part(p) for p in parts]
        elif isinstance(content, list):
            if not all(_is_text_part(p) for p in content):
                raise ValueError(
                    "this request has image, audio or video parts but the deployment is set to "
                    "multimodal: false; use a qwen-vl / qwen-omni model"
                )
            if any(isinstance(p, Mapping) and "cache_control" in p for p in content):
                # An explicit-cache marker needs its part: the text API takes a list of text
                # parts for it (Model Studio "Context cache", explicit cache).
                msg["content"] = [_cache_part(p) for p in content]
            else:
                msg["content"] = _text_of(content)  # the text API takes a string
        else:
            msg["content"] = content
        out.append(msg)
    return out


def encode_native_request(request: ChatRequest, model: str, *, stream: bool, multimodal: bool) -> dict[str, Any]:
    """The native body. ``extra_body`` keys go into ``parameters`` (``enable_search``,
    ``enable_thinking``, ``thinking_budget``, ``top_k``, ...), except ``input`` / ``parameters``
    dicts, which merge into those objects. ``reasoning_effort`` becomes ``enable_thinking`` /
    ``thinking_budget`` (``_thinking.plan_thinking``; the caller's own values win). Streams
    always ask for incremental output."""
    params: dict[str, Any] = {"result_format": "message"}
    openai = request.openai_params()
    for name in _SAME_NAME:
        if name in openai:
            params[name] = openai[name]
    if request.max_output_tokens is not None:
        params["max_tokens"] = request.max_output_tokens
    dropped = [name for name in _UNSUPPORTED if name in openai]
    if dropped:
        log.debug("qwen native API: dropped unsupported parameters %s", ", ".join(dropped))
    params.update(plan_thinking(request, model, stream=stream).params)
    # Unknown top-level request fields (``top_k=40`` passed as a keyword, or the OpenAI SDK's
    # ``extra_body`` through the gateway) are Qwen parameters.
    params.update({k: v for k, v in (request.model_extra or {}).items() if v is not None})
    input_: dict[str, Any] = {"messages": with_partial(native_messages(request.messages, multimodal=multimodal))}
    for key, value in (request.extra_body or {}).items():
        if key == "parameters" and isinstance(value, Mapping):
            params.update(value)
        elif key == "input" and isinstance(value, Mapping):
            input_.update(value)
        elif key != "model":
            params[key] = value
    # The SDK sends no ``stream`` parameter: the ``X-DashScope-SSE`` header decides.
    params.pop("stream", None)
    if stream:
        # Without it every event repeats the whole text so far; callers need deltas.
        params["incremental_output"] = True
    else:
        params.pop("incremental_output", None)
    return {"model": model, "input": input_, "parameters": params}


def native_headers(api_key: str | None, *, stream: bool, workspace: str | None) -> dict[str, str]:
    """The headers DashScope's SDK sends (``HttpRequest``): JSON in, JSON or SSE out."""
    headers = {
        "accept": "text/event-stream" if stream else "application/json; charset=utf-8",
        "content-type": "application/json; charset=utf-8",
    }
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    if stream:
        headers["x-dashscope-sse"] = "enable"
        headers["x-accel-buffering"] = "no"
    if workspace:
        headers["x-dashscope-workspace"] = workspace
    return headers
