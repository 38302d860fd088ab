"""llm-factory provider for Claude on AWS Bedrock and on Anthropic's own Messages API."""

from collections.abc import Callable

from llm_factory_core import hookimpl
from llm_factory_core.providers import Provider

from ._provider import ClaudeProvider
from ._settings import ClaudeSettings

__all__ = ["ClaudeProvider", "ClaudeSettings"]


@hookimpl
def llm_factory_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(ClaudeProvider)
