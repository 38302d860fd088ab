"""Pass-through of a non-streamed OpenAI reply: the upstream's JSON bytes, checked, not re-encoded.

The non-streamed twin of ``_raw_sse``. A caller that only forwards bytes (the server's chat
endpoint) sets ``RAW_REPLY`` around the router's ``chat``; a provider with the ``raw_reply``
capability then returns a ``RawCompletion`` for a reply of the plain OpenAI shape (what its
``parse_completion`` would change nothing in) instead of validating it into a ``ChatCompletion``
and serialising that again: about a third of what the gateway spends on a reply of its own.
Library callers never see one.

The reply is decoded (orjson) and checked: known top-level keys only, ``chat.completion``, a
non-empty id and model, a created time, choices whose message is the assistant's plain text (or
refusal), a finish reason OpenAI defines, integer usage counts. Anything else (tool calls,
logprobs, a missing id, an unknown finish reason, Azure's filter results...) takes the ordinary
path, so what a client gets means exactly what the parsed path sends; the bytes differ only in
the upstream's own ``null`` fields and key order, as OpenAI's API writes them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from ._types import CompletionUsage

__all__ = ["RAW_REPLY", "RawCompletion", "plain_completion"]

RAW_REPLY: ContextVar[bool] = ContextVar("llm_factory_raw_reply", default=False)
"""True while a caller that writes ``RawCompletion.body`` as it is awaits a non-streamed chat."""

_FINISH = frozenset({"stop", "length", "content_filter"})
_TOP = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"})
_CHOICE = frozenset({"index", "message", "finish_reason", "logprobs"})
_MESSAGE = frozenset({"role", "content", "refusal", "annotations"})


class RawCompletion:
    """A plain upstream reply to forward as it is (``body``), with what a gateway records of it."""

    __slots__ = ("_deployment", "body", "texts", "usage", "usage_data")

    def __init__(self, body: bytes, texts: list[str], usage: dict[str, Any] | None) -> None:
        self.body = body
        self.texts = texts
        """Each choice's text, for content logging."""
        self.usage_data = usage
        self.usage: tuple[int, int] | None = (
            None if usage is None else (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        )
        """(prompt, completion) tokens, None when the upstream sent no usage."""
        self._deployment: str | None = None

    @property
    def deployment(self) -> str | None:
        """The deployment that answered (set by the router, as on ``ChatCompletion``)."""
        return self._deployment

    def usage_object(self) -> CompletionUsage | None:
        """The usage as the parsed path has it (the usage records' prices read its details)."""
        usage = self.usage_data
        return None if usage is None else CompletionUsage.model_validate(usage)


def plain_completion(data: Any, body: bytes) -> RawCompletion | None:
    """A ``RawCompletion`` of ``body`` (decoded: ``data``) when it has the plain shape, else None."""
    if type(data) is not dict or data.get("object") != "chat.completion" or not data.keys() <= _TOP:
        return None
    cid, created, model = data.get("id"), data.get("created"), data.get("model")
    if type(cid) is not str or not cid or type(created) is not int or not created:
        return None  # the parsed path fills them in
    if type(model) is not str or not model:
        return None
    usage = data.get("usage")
    if usage is not None:
        if type(usage) is not dict:
            return None
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if type(usage.get(key, 0)) is not int:
                return None
    choices = data.get("choices")
    if type(choices) is not list or not choices:
        return None
    texts = []
    for choice in choices:
        if type(choice) is not dict or not choice.keys() <= _CHOICE or choice.get("logprobs") is not None:
            return None
        if type(choice.get("index", 0)) is not int or choice.get("finish_reason") not in _FINISH:
            return None  # tool calls, or a reason the provider maps: the parsed path
        message = choice.get("message")
        if type(message) is not dict or not message.keys() <= _MESSAGE or message.get("role") != "assistant":
            return None
        text, refusal = message.get("content"), message.get("refusal")
        if (text is not None and type(text) is not str) or (refusal is not None and type(refusal) is not str):
            return None
        annotations = message.get("annotations")
        if annotations is not None and type(annotations) is not list:
            return None
        texts.append(text or "")
    return RawCompletion(body, texts, usage)
