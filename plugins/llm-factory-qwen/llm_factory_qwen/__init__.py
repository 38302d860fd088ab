"""llm-factory provider for Alibaba Cloud DashScope (Qwen): the native API and compatible mode.

``pip install llm-factory-qwen``; then ``provider: qwen`` (``ProviderType.QWEN``) or the
``QWEN_API_KEYS`` / ``QWEN_API_BASE`` / ``QWEN_MODEL`` environment variables.
"""

from collections.abc import Callable

from llm_factory_core import hookimpl
from llm_factory_core.providers import Provider

from ._native_errors import classify_native_error
from ._native_request import encode_native_request, wants_multimodal
from ._native_response import NativeStreamState, decode_native_completion
from ._provider import QwenProvider
from ._settings import QwenSettings, api_mode

__all__ = [
    "NativeStreamState",
    "QwenProvider",
    "QwenSettings",
    "api_mode",
    "classify_native_error",
    "decode_native_completion",
    "encode_native_request",
    "wants_multimodal",
]


@hookimpl
def llm_factory_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(QwenProvider)
