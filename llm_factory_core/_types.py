"""OpenAI's chat completion shapes as pydantic models.

Response models keep unknown fields (``extra="allow"``) so provider additions such as DeepSeek's
``reasoning_content`` survive, and ``model_dump(exclude_none=True)`` is what the OpenAI API returns.
Every model also reads like a dict (``choice.get("delta", {}).get("content")``,
``choice["delta"]["content"]``) because the original README's examples are written that way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionUsage",
    "FinishReason",
    "FunctionCall",
    "OpenAIObject",
    "ToolCall",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class OpenAIObject(BaseModel):
    """Base of every response model: keeps unknown fields and supports dict-style access."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def get(self, key: str, default: Any = None) -> Any:
        """Return field ``key`` (declared or extra) or ``default`` when it is missing or None."""
        value = getattr(self, key, None) if key in type(self).model_fields else None
        if value is None and self.__pydantic_extra__:
            value = self.__pydantic_extra__.get(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form: ``model_dump(exclude_none=True)``."""
        return self.model_dump(exclude_none=True)


class FunctionCall(OpenAIObject):
    name: str
    """The function to call."""
    arguments: str
    """The arguments as a JSON-encoded string, exactly as the model produced them."""


class ToolCall(OpenAIObject):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatCompletionMessage(OpenAIObject):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    """The reply text; None when the model only called tools."""
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(OpenAIObject):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class CompletionUsage(OpenAIObject):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ChatCompletion(OpenAIObject):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    """Unix seconds."""
    model: str
    """The model that actually answered (after any failover)."""
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None

    # A slot, not a pydantic PrivateAttr: private attributes cost a third of validating a reply.
    __slots__ = ("_deployment",)
    if TYPE_CHECKING:
        _deployment: str | None

    @property
    def deployment(self) -> str | None:
        """Name of the deployment that produced this response (not part of the wire form)."""
        return getattr(self, "_deployment", None)

    def __copy__(self) -> ChatCompletion:
        copied = super().__copy__()
        copied._deployment = self.deployment
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ChatCompletion:
        copied = super().__deepcopy__(memo)
        copied._deployment = self.deployment
        return copied


class ChoiceDeltaToolCallFunction(OpenAIObject):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(OpenAIObject):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaToolCallFunction | None = None


class ChoiceDelta(OpenAIObject):
    role: Literal["assistant", "system", "user", "tool", "developer"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(OpenAIObject):
    index: int = 0
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(OpenAIObject):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None

    def has_content(self) -> bool:
        """True when this chunk carries something a caller sees (text, reasoning, tool calls,
        a refusal or a finish reason), as opposed to a bare role or keep-alive chunk."""
        for choice in self.choices:
            if choice.finish_reason is not None:
                return True
            delta = choice.delta
            if delta.content or delta.tool_calls or delta.refusal:
                return True
            if delta.__pydantic_extra__ and delta.__pydantic_extra__.get("reasoning_content"):
                return True
        return False
