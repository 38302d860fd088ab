"""The request model: OpenAI's chat completion request plus ``load_balance_strategy``.

Messages stay plain dicts (validated as TypedDicts) so providers translate them without another
object layer; unknown request fields are kept (``extra="allow"``) and passed to providers that
accept them; anything provider-specific goes in ``extra_body``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NotRequired, Required

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict

__all__ = ["ChatMessage", "ChatRequest", "ROUTING_FIELDS", "to_messages"]

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(TypedDict, total=False):
    """One OpenAI message. ``content`` is a string or a list of parts (text, image_url, ...)."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    role: Required[Role]
    content: NotRequired[str | list[dict[str, Any]] | None]
    name: NotRequired[str]
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_call_id: NotRequired[str]


ROUTING_FIELDS = frozenset({"load_balance_strategy", "extra_body"})
"""Request fields llm-factory consumes itself; never sent upstream as-is."""


_NOT_PARAMS = frozenset({"messages", "model", "stream", *ROUTING_FIELDS})


class ChatRequest(BaseModel):
    """A chat completion request in OpenAI's shape."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    """The configured model name to route to; None means the first configured one."""
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    stream_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None

    load_balance_strategy: str | None = None
    """Overrides the factory's default strategy for this call."""
    extra_body: dict[str, Any] | None = None
    """Provider-specific fields merged into the upstream body (``enable_search`` for Qwen, ...)."""

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

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


def to_messages(prompt: str | Sequence[ChatMessage | dict[str, Any]]) -> list[dict[str, Any]]:
    """A string prompt becomes one user message; a messages list is used as given."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]
