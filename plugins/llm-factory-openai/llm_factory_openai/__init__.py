"""llm-factory provider for OpenAI, Azure OpenAI and any OpenAI-compatible endpoint."""

from collections.abc import Callable

from llm_factory_core import hookimpl
from llm_factory_core.providers import Provider

from ._provider import OpenAIProvider, OpenAISettings

__all__ = ["OpenAIProvider", "OpenAISettings"]


@hookimpl
def llm_factory_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenAIProvider)
