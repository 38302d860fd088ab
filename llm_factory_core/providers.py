"""The API for provider plugin authors: base classes, the OpenAI wire codec, SSE, the errors a
provider raises, model rules and helpers. The guide: docs/writing-a-provider.md."""

from ._balancing import Strategy
from ._bounded import too_large
from ._chunk_stream import ChunkDecoder, decoded_stream, event_limit
from ._deployment import Deployment
from ._embeddings import decode_openai_embeddings, encode_openai_embeddings, pack_base64
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from ._health import DeploymentStats, HealthStore, InMemoryHealth
from ._json import dumps as json_dumps
from ._json import loads as json_loads
from ._message_fields import FOREIGN_PART_TYPES, MessageFields
from ._model_rules import ParamRule, UnsupportedParamsPolicy, apply_model_rules
from ._openai_codec import (
    FINISH_REASONS,
    OpenAICompatibleProvider,
    OpenAIStreamState,
    classify_openai_error,
    encode_openai_request,
    new_completion_id,
)
from ._plugins import PluginRegistry, default_registry
from ._provider import (
    Capabilities,
    Provider,
    ProviderSettings,
    Timeouts,
    error_for_status,
    mask_secret,
    parse_retry_after,
)
from ._reasoning_memory import ReasoningMemory, reasoning_memory
from ._request import ChatRequest
from ._shared_state import SharedHealth
from ._sse import LineSplitter, ServerSentEvent, SSEReader, aiter_sse, decode_sse_lines

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ChatRequest",
    "ContentFilterError",
    "ContextLengthError",
    "FOREIGN_PART_TYPES",
    "InsufficientQuotaError",
    "MessageFields",
    "ProviderError",
    "RateLimitError",
    "ServerError",
    "StreamInterruptedError",
    "UpstreamConnectionError",
    "UpstreamTimeoutError",
    "FINISH_REASONS",
    "Capabilities",
    "ChunkDecoder",
    "Deployment",
    "DeploymentStats",
    "HealthStore",
    "InMemoryHealth",
    "OpenAICompatibleProvider",
    "OpenAIStreamState",
    "ParamRule",
    "PluginRegistry",
    "Provider",
    "ProviderSettings",
    "ReasoningMemory",
    "LineSplitter",
    "SSEReader",
    "ServerSentEvent",
    "SharedHealth",
    "Strategy",
    "Timeouts",
    "UnsupportedParamsPolicy",
    "aiter_sse",
    "decode_openai_embeddings",
    "encode_openai_embeddings",
    "pack_base64",
    "apply_model_rules",
    "classify_openai_error",
    "decode_sse_lines",
    "decoded_stream",
    "default_registry",
    "encode_openai_request",
    "error_for_status",
    "event_limit",
    "json_dumps",
    "json_loads",
    "mask_secret",
    "new_completion_id",
    "parse_retry_after",
    "reasoning_memory",
    "too_large",
]
