"""llm-factory provider for Google Gemini (Generative Language API; optionally Vertex AI)."""

from collections.abc import Callable

from llm_factory_core import hookimpl
from llm_factory_core.providers import Provider

from ._provider import GeminiProvider
from ._settings import GeminiSettings

__all__ = ["GeminiProvider", "GeminiSettings"]


@hookimpl
def llm_factory_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(GeminiProvider)
