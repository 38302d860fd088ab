"""llm-factory core: one interface over many LLM providers.

from llm_factory_core import LLMFactory, ModelConfig, ProviderType

factory = LLMFactory(ModelConfig(provider=ProviderType.OPENAI, model_name="gpt-4o", api_key="..."))
print(factory.chat("Hello").choices[0].message.content)
"""

from ._config import FactoryConfig, ModelConfig, ProviderType, RouterSettings
from ._embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from ._errors import (
    AllDeploymentsFailedError,
    Attempt,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    InvalidRequestError,
    LLMFactoryError,
    ModelNotFoundError,
    NoDeploymentAvailableError,
    PluginError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnknownStrategyError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from ._factory import DeploymentStatus, LLMFactory
from ._reload import ReloadResult
from ._request import ChatMessage, ChatRequest
from ._router import CallInfo
from ._sources import load_env
from ._streams import AsyncChatStream, ChatStream
from ._types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    CompletionUsage,
    FunctionCall,
    ToolCall,
)
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "AllDeploymentsFailedError",
    "AsyncChatStream",
    "Attempt",
    "AuthenticationError",
    "CallInfo",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatMessage",
    "ChatRequest",
    "ChatStream",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionUsage",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "DeploymentStatus",
    "ReloadResult",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "FactoryConfig",
    "FunctionCall",
    "InsufficientQuotaError",
    "InvalidRequestError",
    "LLMFactory",
    "LLMFactoryError",
    "ModelConfig",
    "ModelNotFoundError",
    "NoDeploymentAvailableError",
    "PluginError",
    "ProviderError",
    "ProviderType",
    "RateLimitError",
    "RouterSettings",
    "ServerError",
    "StreamInterruptedError",
    "ToolCall",
    "UnknownStrategyError",
    "UpstreamConnectionError",
    "UpstreamTimeoutError",
    "__version__",
    "hookimpl",
    "load_env",
]
