"""The public surface is pinned: removing or renaming a name is a visible change."""

import llm_factory_core
import llm_factory_core.providers
import llm_factory_core.testing


def test_core_all() -> None:
    assert sorted(llm_factory_core.__all__) == sorted(
        [
            "AllDeploymentsFailedError",
            "AsyncChatStream",
            "Attempt",
            "AuthenticationError",
            "BadRequestError",
            "CallInfo",
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
            "ReloadResult",
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
    )
    for name in llm_factory_core.__all__:
        assert hasattr(llm_factory_core, name), name


def test_every_exported_name_exists() -> None:
    for module in (llm_factory_core.providers, llm_factory_core.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_import_does_not_pull_in_plugins_or_heavy_modules() -> None:
    import subprocess
    import sys

    prefixes = "('llm_factory_', 'openai', 'boto', 'yaml', 'dotenv')"
    code = f"import sys, llm_factory_core; print(sorted(m for m in sys.modules if m.startswith({prefixes})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "llm_factory_openai" not in out and "openai" not in out and "boto" not in out
