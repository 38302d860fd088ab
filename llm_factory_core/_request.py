"""The request model: OpenAI's chat completion request plus ``load_balance_strategy``.

Messages stay plain dicts (validated as TypedDicts) so providers translate them without another
object layer; unknown request fields are kept (``extra="allow"``) and passed to providers that
accept them; anything provider-specific goes in ``extra_body``.

What routing owns is never the caller's to override (a gateway's clients may be hostile): the
model, ``stream``, the messages and every URL or credential come from the request's own fields and
the deployment's configuration. ``extra_body`` (merged last into upstream bodies) may not name them
(``RESERVED_EXTRA_BODY``), nor may an unknown top-level field name a URL or credential
(``RESERVED_FIELDS``); an OpenAI field inside ``extra_body`` gets the same checks as at the top
level. Scalars are strict: ``"stream": "yes"`` or ``"n": "2"`` is an error, as at OpenAI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

__all__ = [
    "RESERVED_EXTRA_BODY",
    "RESERVED_FIELDS",
    "ROUTING_FIELDS",
    "ChatMessage",
    "ChatRequest",
    "StreamOptions",
    "to_messages",
]

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(TypedDict, total=False):
    """One OpenAI message. ``content`` is a string or a list of parts (text, image_url, ...)."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    role: Required[Role]
    content: NotRequired[str | list[dict[str, Any]] | None]
    name: NotRequired[str]
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_call_id: NotRequired[str]


class StreamOptions(TypedDict, total=False):
    """OpenAI's ``stream_options``; other keys pass through."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    include_usage: StrictBool


ROUTING_FIELDS = frozenset({"load_balance_strategy", "extra_body"})
"""Request fields llm-factory consumes itself; never sent upstream as-is."""

RESERVED_FIELDS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "azure_endpoint",
        "azure_deployment",
        "azure_ad_token",
        "organization",
        "project",
        "headers",
        "extra_headers",
        "extra_query",
    }
)
"""Where a request goes and with which credentials: configured per deployment, never sent by a
caller (neither as an unknown top-level field nor inside ``extra_body``)."""

RESERVED_EXTRA_BODY = frozenset({"model", "stream", "messages", *ROUTING_FIELDS, *RESERVED_FIELDS})
"""Keys ``extra_body`` may not hold. ``model`` picks the upstream model the deployment is configured
for; ``stream`` decides how the reply is read (overriding it made a healthy deployment look broken
and cooled it down for every client); ``messages`` are validated at the top level."""


def _at_most_4_stops(value: str | list[str] | None) -> str | list[str] | None:
    if isinstance(value, list) and len(value) > 4:
        raise ValueError("at most 4 stop sequences are allowed")
    return value


_NOT_PARAMS = frozenset({"messages", "model", "stream", *ROUTING_FIELDS})


class ChatRequest(BaseModel):
    """A chat completion request in OpenAI's shape."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    """The configured model name to route to; None means the first configured one."""
    stream: bool = Field(default=False, strict=True)
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    top_p: float | None = Field(default=None, ge=0, le=1, strict=True)
    n: int | None = Field(default=None, ge=1, le=128, strict=True)
    stop: Annotated[str | list[str] | None, AfterValidator(_at_most_4_stops)] = None
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, strict=True)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2, strict=True)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = Field(default=None, strict=True)
    top_logprobs: int | None = Field(default=None, ge=0, le=20, strict=True)
    seed: int | None = Field(default=None, strict=True)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = Field(default=None, strict=True)
    user: str | None = None
    stream_options: StreamOptions | None = None
    reasoning_effort: str | None = None

    load_balance_strategy: str | None = None
    """Overrides the factory's default strategy for this call."""
    extra_body: dict[str, Any] | None = None
    """Provider-specific fields merged into the upstream body (``enable_search`` for Qwen, ...)."""

    @field_validator("extra_body")
    @classmethod
    def _extra_body_owns_nothing(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:
            return value
        for key in value:
            if key in RESERVED_EXTRA_BODY:
                raise PydanticCustomError(
                    "reserved_field",
                    "extra_body.{key} is not allowed: {why}",
                    {"key": key, "why": _why_reserved(key)},
                )
            check = _FIELD_CHECKS.get(key)
            if check is not None:  # an OpenAI field: the same bounds and types as at the top level
                try:
                    check.validate_python(value[key], strict=True)
                except ValidationError as exc:
                    error = exc.errors(include_url=False, include_input=False)[0]
                    raise PydanticCustomError(
                        "invalid_extra_body",
                        "extra_body.{key}: {msg}",
                        {"key": key, "msg": error["msg"]},
                    ) from None
        return value

    @model_validator(mode="after")
    def _extras_own_nothing(self) -> ChatRequest:
        extra = self.__pydantic_extra__
        if extra and not RESERVED_FIELDS.isdisjoint(extra):
            key = min(RESERVED_FIELDS.intersection(extra))
            raise PydanticCustomError(
                "reserved_field", "{key} is not allowed in a request: {why}", {"key": key, "why": _why_reserved(key)}
            )
        return self

    @property
    def include_usage(self) -> bool:
        """Whether the caller asked for a usage chunk at the end of a stream."""
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    @property
    def max_output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def openai_params(self) -> dict[str, Any]:
        """Every set OpenAI parameter except messages, model and stream (extras included).

        Values are the request's own (not copies): read them, do not change them in place. A
        loop over the fields rather than ``model_dump``, which costs several times more on the
        hot path and would only copy plain JSON values."""
        params = {k: v for k, v in self.__dict__.items() if v is not None and k not in _NOT_PARAMS}
        if self.__pydantic_extra__:
            params.update((k, v) for k, v in self.__pydantic_extra__.items() if v is not None)
        return params


def _field_check(info: FieldInfo) -> TypeAdapter[Any]:
    annotated: Any = Annotated[info.annotation, info]  # the field's type with its bounds
    return TypeAdapter(annotated)


_FIELD_CHECKS = {
    name: _field_check(info) for name, info in ChatRequest.model_fields.items() if name not in RESERVED_EXTRA_BODY
}
"""Validators of each OpenAI field, for the same field inside ``extra_body``."""


def _why_reserved(key: str) -> str:
    if key in RESERVED_FIELDS:
        return "URLs and credentials come from the deployment's configuration, never from a request"
    if key == "stream":
        return "set the top-level 'stream' field instead (it decides how the reply is read)"
    if key == "model":
        return (
            "set the top-level 'model' field to a configured model name; each deployment sends its own upstream model"
        )
    return f"set the top-level '{key}' field instead"


def to_messages(prompt: str | Sequence[ChatMessage | dict[str, Any]]) -> list[dict[str, Any]]:
    """A string prompt becomes one user message; a messages list is used as given."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]
