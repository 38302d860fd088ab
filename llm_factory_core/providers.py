"""The API for provider plugin authors: base classes, the OpenAI wire codec, SSE, helpers."""

from ._balancing import Strategy
from ._deployment import Deployment
from ._health import DeploymentStats, HealthStore, InMemoryHealth
from ._json import dumps as json_dumps
from ._json import loads as json_loads
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
from ._sse import ServerSentEvent, aiter_sse, decode_sse_lines

__all__ = [
    "FINISH_REASONS",
    "Capabilities",
    "Deployment",
    "DeploymentStats",
    "HealthStore",
    "InMemoryHealth",
    "OpenAICompatibleProvider",
    "OpenAIStreamState",
    "PluginRegistry",
    "Provider",
    "ProviderSettings",
    "ServerSentEvent",
    "Strategy",
    "Timeouts",
    "aiter_sse",
    "classify_openai_error",
    "decode_sse_lines",
    "default_registry",
    "encode_openai_request",
    "error_for_status",
    "json_dumps",
    "json_loads",
    "mask_secret",
    "new_completion_id",
    "parse_retry_after",
]
