"""llm-factory provider for DeepSeek (``deepseek-flash``, ``deepseek-v4-pro`` and the legacy
``deepseek-chat`` / ``deepseek-reasoner``): OpenAI's wire format with ``reasoning_content`` and its
round trip in thinking-mode tool loops, chat prefix completion, keep-alives and DeepSeek's failure
modes."""

from collections.abc import Callable

from llm_factory_core import hookimpl
from llm_factory_core.providers import Provider

from ._history import prepare_messages, thinking_mode
from ._provider import DeepSeekProvider, DeepSeekSettings

__all__ = ["DeepSeekProvider", "DeepSeekSettings", "prepare_messages", "thinking_mode"]


@hookimpl
def llm_factory_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(DeepSeekProvider)
